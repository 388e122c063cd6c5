"""Which process of a multi-process run this is (Keras' distribution API on JAX, or PyTorch's
``torch.distributed`` under torchrun), and the id that the processes of one fit share, so that their
history records can be grouped.

The id is agreed through the framework's own key-value store: JAX's coordination service, which
``keras.distribution.initialize`` starts, or the store of PyTorch's default process group (torchrun's
TCPStore). Process 0 puts a fresh id there, the others read it (waiting at most ``WAIT_MS`` for
process 0 to reach the same fit). Every process times the same fits in the same order, so the n-th
timed fit of each process is the same fit.
"""

from __future__ import annotations

import datetime
import itertools
import os
import sys
import uuid
from collections.abc import Callable

from .frameworks import normalise_device

WAIT_MS = 30_000
_fits = itertools.count()


def current() -> dict | None:
    """``{"task_index", "workers", "run", "local_devices", "coordinator", "local_processes"}`` in a
    multi-process JAX or torch.distributed run, else None (``local_processes``: the run's processes on
    this machine, which share its cores; torchrun says, JAX does not: None). Call once per fit, at its
    start, in every process."""
    torch_run = _torch_process()
    if torch_run is not None:
        return torch_run
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
        "local_processes": None,
    }


def _shared_id(n: int, index: int) -> tuple[str | None, str]:
    # jax._src.distributed is private, but it is where the coordination client lives; if it moves,
    # the processes fall back to an id made of what they already share (same coordinator, same n).
    try:
        from jax._src import distributed

        state = distributed.global_state
        coordinator = state.coordinator_address
    except Exception:  # noqa: BLE001 - grouping is a convenience: never stop the fit for it
        return None, f"jax#{n}"
    client = state.client  # None until keras.distribution.initialize: the fallback then
    return coordinator, _agreed_id(n, index, lambda key, run: client.key_value_set(key, run),  # type: ignore[union-attr]
                                   lambda key: str(client.blocking_key_value_get(key, WAIT_MS)),  # type: ignore[union-attr]
                                   f"{coordinator or 'jax'}#{n}")


def _agreed_id(n: int, index: int, put: Callable[[str, str], object], get: Callable[[str], str], fallback: str) -> str:
    """The n-th fit's run id: process 0 puts a fresh one in the framework's key-value store, the others
    wait for it there (at most WAIT_MS). Any failure gives ``fallback``, made of what they already share."""
    key = f"colab_magic/run/{n}"
    try:
        if index == 0:
            run = uuid.uuid4().hex[:12]
            put(key, run)
            return run
        return get(key)
    except Exception:  # noqa: BLE001 - grouping is a convenience: never stop the training for it
        return fallback


def _torch_process() -> dict | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return None
    dist = torch.distributed
    workers = dist.get_world_size()
    if workers <= 1:
        return None
    n, index = next(_fits), dist.get_rank()
    coordinator = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}" if "MASTER_ADDR" in os.environ else None
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() and torch.cuda.is_initialized() else "cpu:0"
    return {
        "task_index": index,
        "workers": workers,
        "run": _torch_shared_id(n, index, coordinator),
        "local_devices": [normalise_device(device)],
        "coordinator": coordinator,
        "local_processes": int(os.environ.get("LOCAL_WORLD_SIZE") or 1),  # torchrun sets it
    }


def _torch_shared_id(n: int, index: int, coordinator: str | None) -> str:
    # the default group's store is reached through a private name; if it moves, the processes fall back
    # to an id made of what they already share (the same coordinator, the same n)
    fallback = f"{coordinator or 'torch'}#{n}"
    try:
        from torch.distributed import distributed_c10d

        store = distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - grouping is a convenience: never stop the training for it
        return fallback

    def get(key: str) -> str:
        store.wait([key], datetime.timedelta(milliseconds=WAIT_MS))
        return bytes(store.get(key)).decode()

    return _agreed_id(n, index, store.set, get, fallback)
