"""Which process of a multi-process run this is (Keras' distribution API on JAX), and the id that the
processes of one fit share, so that their history records can be grouped.

The id is agreed through JAX's own coordination service, which ``keras.distribution.initialize``
starts: process 0 puts a fresh id in its key-value store, the others read it (waiting at most
``WAIT_MS`` for process 0 to reach the same fit). Every process times the same fits in the same
order, so the n-th timed fit of each process is the same fit.
"""

from __future__ import annotations

import itertools
import sys
import uuid

from .frameworks import normalise_device

WAIT_MS = 30_000
_fits = itertools.count()


def current() -> dict | None:
    """``{"task_index", "workers", "run", "local_devices", "coordinator"}`` in a multi-process JAX run,
    else None. Call once per fit, at its start, in every process."""
    keras = sys.modules.get("keras")
    if keras is None or keras.backend.backend() != "jax":
        return None
    import jax

    if jax.process_count() <= 1:
        return None
    n = next(_fits)
    index, workers = jax.process_index(), jax.process_count()
    coordinator, run = _shared_id(n, index)
    return {
        "task_index": index,
        "workers": workers,
        "run": run,
        "local_devices": [normalise_device(str(d)) for d in jax.local_devices()],
        "coordinator": coordinator,
    }


def _shared_id(n: int, index: int) -> tuple[str | None, str]:
    # jax._src.distributed is private, but it is where the coordination client lives; if it moves,
    # the processes fall back to an id made of what they already share (same coordinator, same n).
    coordinator = None
    try:
        from jax._src import distributed

        state = distributed.global_state
        coordinator = state.coordinator_address
        key = f"colab_magic/run/{n}"
        if index == 0:
            run = uuid.uuid4().hex[:12]
            state.client.key_value_set(key, run)  # type: ignore[union-attr]  # None: caught below
            return coordinator, run
        return coordinator, str(state.client.blocking_key_value_get(key, WAIT_MS))  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - grouping is a convenience: never stop the fit for it
        return coordinator, f"{coordinator or 'jax'}#{n}"
