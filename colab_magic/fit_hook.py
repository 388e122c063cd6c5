"""While a cell runs, every Keras ``Model.fit`` gets a :class:`~colab_magic.timing.StepTimer` and a
:class:`~colab_magic.sampler.Sampler`; one :class:`~colab_magic.report.FitReport` per fit results.

``fit`` is defined on the backend's trainer class, not on ``keras.Model``, so setting ``keras.Model.fit``
for the cell covers Sequential, Functional and subclassed models (those that override ``fit`` and call
``super().fit`` too). On exit the class is put back exactly as it was. ``tf.keras.Model`` is the same
class from TensorFlow 2.16 on.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading

from . import frameworks
from .report import build_report
from .sampler import DEFAULT_INTERVAL, Sampler


class FitInterceptor:
    def __init__(self, interval: float = DEFAULT_INTERVAL):
        self.interval = interval
        self.reports = []
        self.errors: list[str] = []  # failures of our own bookkeeping, never the user's
        self._local = threading.local()

    def __enter__(self):
        import keras

        self._model = keras.Model
        self._own = self._model.__dict__.get("fit")
        original = self._model.fit
        signature = inspect.signature(original)
        interceptor = self

        @functools.wraps(original)
        def fit(model, *args, **kwargs):
            __tracebackhide__ = True
            return interceptor._fit(original, signature, model, args, kwargs)

        self._model.fit = fit
        return self

    def __exit__(self, *exc):
        if self._own is None:
            del self._model.fit
        else:
            self._model.fit = self._own
        return False

    def _fit(self, original, signature, model, args, kwargs):
        __tracebackhide__ = True
        # A fit inside a fit (a custom fit calling fit again) is timed once, by the outer one.
        if getattr(self._local, "busy", False):
            return original(model, *args, **kwargs)
        try:
            bound = signature.bind(model, *args, **kwargs)
        except TypeError:
            return original(model, *args, **kwargs)  # let Keras word the error
        from .timing import StepTimer

        self._local.busy = True
        sampler = Sampler(self.interval)
        spe = getattr(model, "steps_per_execution", 1) or 1
        timer = StepTimer(on_epoch_end=sampler.mark, steps_per_execution=spe)
        callbacks, detach = _attach(bound.arguments.get("callbacks"), timer, model)
        bound.arguments["callbacks"] = callbacks
        error = None
        sampler.start()
        try:
            return original(*bound.args, **bound.kwargs)
        except BaseException as exc:
            error = f"{type(exc).__name__}" + (f": {exc}" if str(exc) else "")
            raise
        finally:
            detach()
            sampler.stop()
            self._local.busy = False
            self._report(model, bound.arguments, timer, sampler, error)

    def _report(self, model, arguments, timer, sampler, error) -> None:
        # Runs in a finally: it must not raise, or it would hide the user's own exception.
        try:
            timer.close()
            backend = sys.modules["keras"].backend.backend()
            device = frameworks.weight_device(model)
            info = {
                "model": getattr(model, "name", type(model).__name__),
                "backend": backend,
                "device": device,
                "batch_size": batch_size_of(arguments.get("x"), arguments.get("batch_size")),
                "steps_per_execution": getattr(model, "steps_per_execution", 1) or 1,
                "error": error,
                "framework_memory_peak": frameworks.framework_memory_peak(backend, device),
            }
            self.reports.append(build_report(len(self.reports) + 1, timer, sampler, info))
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"could not build the report: {type(exc).__name__}: {exc}")


def _attach(callbacks, timer, model):
    """Add ``timer`` to the user's callbacks (None, a list, or a CallbackList used as is).

    Returns the callbacks to pass to fit and a function that leaves the user's objects as they were.
    """
    if callbacks is None:
        return [timer], lambda: None
    if isinstance(callbacks, (list, tuple)):
        return list(callbacks) + [timer], lambda: None
    # A CallbackList: Keras uses it as given, so ours goes inside it, and out again afterwards.
    # The timer is async_safe, so the list's choice of async dispatch stays right with it inside.
    inner = callbacks.callbacks
    inner.append(timer)
    timer.set_model(model)
    if getattr(callbacks, "params", None):
        timer.set_params(callbacks.params)

    def detach():
        if timer in inner:
            inner.remove(timer)

    return callbacks, detach


def batch_size_of(x, batch_size) -> int | None:
    """Samples per step where Keras' own rules make it knowable; None for generators and the like."""
    if x is None:
        return None
    if hasattr(x, "shape") and not hasattr(x, "element_spec"):  # a NumPy array or a tensor
        n = x.shape[0] if len(x.shape) else None
        size = batch_size or 32
        return min(size, n) if n else size
    if isinstance(x, (list, tuple, dict)):
        first = next(iter(x.values() if isinstance(x, dict) else x), None)
        return batch_size_of(first, batch_size)
    spec = getattr(x, "element_spec", None)  # tf.data.Dataset
    if spec is not None:
        import tensorflow as tf

        for part in tf.nest.flatten(spec):
            shape = getattr(part, "shape", None)
            if shape is not None and shape.rank and shape[0] is not None:
                return int(shape[0])
    return None


def time_cell(execute, interval: float = DEFAULT_INTERVAL):
    """Run ``execute()`` with every Keras fit timed.

    Returns ``(result, value, error)``: the :class:`TimedFitResult`, what ``execute`` returned, and
    the exception that stopped it (the caller shows the result, then re-raises).
    """
    __tracebackhide__ = True
    import time

    from .report import TimedFitResult

    start = time.perf_counter()
    value = error = None
    try:
        import keras  # noqa: F401 - patching needs it; a cell that trains with Keras imports it anyway
    except ImportError:
        interceptor = None
    else:
        interceptor = FitInterceptor(interval)
    try:
        if interceptor is None:
            value = execute()
        else:
            with interceptor:
                value = execute()
    except BaseException as exc:  # KeyboardInterrupt included: summarise what ran, then re-raise
        error = exc
    described = None if error is None else f"{type(error).__name__}" + (f": {error}" if str(error) else "")
    result = TimedFitResult(
        reports=interceptor.reports if interceptor else [],
        cell_s=time.perf_counter() - start,
        complete=error is None,
        error=described,
    )
    if interceptor is None:
        result.notes.append("Keras is not installed, so no fit could be timed (pip install keras).")
    elif interceptor.errors:
        result.notes.extend(interceptor.errors)
    return result, value, error
