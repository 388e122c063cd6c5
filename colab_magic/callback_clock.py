"""How long each of the user's Keras callbacks took: every hook a callback overrides is timed for the
fit, by the callback's class name, inside each epoch and outside them (an ``on_epoch_begin`` runs
before the epoch's clock starts, as colab_magic's own callback comes last).

The callbacks are the user's own objects: the timed hooks are instance attributes set for the fit and
removed after it (a hook the instance already had as an attribute, as ``LambdaCallback``'s, is put
back), so ``isinstance``, Keras' checks for overridden hooks and the asynchronous dispatch they decide
stay as they were. Two ``perf_counter`` calls per hook call: microseconds a step at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
         "on_train_batch_end", "on_batch_begin", "on_batch_end", "on_test_begin", "on_test_end",
         "on_test_batch_begin", "on_test_batch_end")
OUTSIDE = -1  # the key of time spent outside every epoch


class CallbackClock:
    """Seconds by callback name and epoch (0-based; :data:`OUTSIDE` for time outside epochs).
    ``epoch_now``: the index of the epoch running now, or None between epochs."""

    def __init__(self, epoch_now: Callable[[], int | None]) -> None:
        self.epoch_now = epoch_now
        self.seconds: dict[str, dict[int, float]] = {}
        self.own_s = 0.0  # colab_magic's own callback, accounted apart
        self._lock = threading.Lock()

    def attach(self, callbacks: list) -> Callable[[], None]:
        """Time each callback's own hooks; returns what takes the timing off again."""
        undo: list[Callable[[], None]] = []
        for callback in callbacks:
            name = type(callback).__name__
            for hook in HOOKS:
                method = getattr(callback, hook, None)
                if method is None or getattr(method, "_is_default", False):  # Keras' no-op: not called for
                    continue
                undo.append(_restorer(callback, hook))
                setattr(callback, hook, self._timed(name, method))

        def detach() -> None:
            for restore in reversed(undo):
                restore()

        return detach

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)

        return timed

    def add(self, name: str, seconds: float) -> None:
        epoch = self.epoch_now()
        key = OUTSIDE if epoch is None else epoch
        with self._lock:
            per_epoch = self.seconds.setdefault(name, {})
            per_epoch[key] = per_epoch.get(key, 0.0) + seconds


def _restorer(callback: Any, hook: str) -> Callable[[], None]:
    had, value = hook in vars(callback), vars(callback).get(hook)

    def restore() -> None:
        if had:
            setattr(callback, hook, value)
        else:
            vars(callback).pop(hook, None)

    return restore
