"""``--backup``: Keras' BackupAndRestore for each fit, in a folder per training run, safe to share and to
cut at any moment.

- The folder is keyed by everything that makes a training run the same: the model's signature, its
  layers' settings, and how it was compiled (optimizer and its settings, loss, metrics). Another
  model, or the same layers trained otherwise, never resumes from it.
- A run holds an exclusive lock on its folder (``flock`` on ``.locks/<folder>.lock`` beside it) while it trains: a second
  run of the same model, in another process or another thread, runs without a backup and is told why
  (it used to resume from the first one's weights in mid-epoch, or fail in h5py).
- Keras keeps the checkpoint before the last (``double_checkpoint``). Before a fit, the checkpoint is
  read through: a torn one (the runtime killed while writing it) is replaced by the one before it, or,
  where that is torn too, the folder is set aside and the fit starts afresh; a note says which.
- The disk must hold two checkpoints: checked before the fit, else the fit runs without a backup.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .parts import ModelSignature
from .units import fmt_bytes

try:
    import fcntl
except ImportError:  # Windows: no flock; runs of one model are then not kept apart
    fcntl = None  # type: ignore[assignment]

WEIGHTS, METADATA, BEFORE = "latest.weights.h5", "training_metadata.json", ".bkp"  # Keras' own names
LOCKS = ".locks"  # beside the folders, not in them: Keras removes a folder when its fit completes
FORMAT_ROOM = 256 * 2**10  # an HDF5 file's own structure and the metadata, beside the arrays


@dataclass
class Backup:
    """A fit's backup: Keras' callback (None: this fit runs without one), what to say about it, and the
    lock on its folder, held until :meth:`release`."""

    callback: Any
    note: str | None = None
    lock_fd: int | None = None

    def release(self) -> None:
        if self.lock_fd is not None:
            os.close(self.lock_fd)  # closing releases the flock
            self.lock_fd = None


def backup_for(model: Any, arguments: dict, root: Path, signature: ModelSignature) -> Backup:
    """A backup for this fit in ``root/<backup_key>``, or one without a callback and the reason: the
    user's own BackupAndRestore comes first, Keras refuses a model that is not built before fit, the
    disk must have room, and another run of the same model must not be using the folder."""
    import keras

    given = arguments.get("callbacks")
    given = getattr(given, "callbacks", given) or []
    if any(isinstance(c, keras.callbacks.BackupAndRestore) for c in given):
        return Backup(None, "--backup: your own BackupAndRestore callback is used instead.")
    if not getattr(model, "built", False):
        return Backup(None, "--backup needs a model that is built before fit (start it with keras.Input, or call "
                            "it on a batch first); this fit ran without a backup.")
    need, free = backup_bytes(model), shutil.disk_usage(root).free
    if free < need:  # else the user's fit would fail mid-training with h5py's "No space left on device"
        return Backup(None, f"--backup: a backup of this model needs about {fmt_bytes(need)}, and {root} has "
                            f"{fmt_bytes(free)} free; this fit ran without a backup.")
    folder = Path(root) / backup_key(model, signature)
    lock_fd = _lock(Path(root) / LOCKS / (folder.name + ".lock"))
    if lock_fd is False:
        return Backup(None, f"--backup: another run of this model (in this kernel or another process) is using "
                            f"its backup in {folder}; this fit ran without a backup.")
    try:
        note = repair(folder)
        double = "double_checkpoint" in inspect.signature(keras.callbacks.BackupAndRestore).parameters
        callback = keras.callbacks.BackupAndRestore(str(folder), **({"double_checkpoint": True} if double else {}))
    except BaseException:
        if isinstance(lock_fd, int):
            os.close(lock_fd)
        raise
    return Backup(callback, note, lock_fd if isinstance(lock_fd, int) else None)


def _lock(path: Path) -> int | bool | None:
    """An exclusive lock on ``path`` (its file descriptor), False when another holds it, None where the
    system has no flock."""
    if fcntl is None:
        return None
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return fd


def repair(folder: Path) -> str | None:
    """Make the checkpoint in ``folder`` one that loads, or set the folder aside; what was done, or None
    when there was nothing to do."""
    if not folder.is_dir() or intact(folder, ""):
        return None
    if intact(folder, BEFORE) and (folder / (WEIGHTS + BEFORE)).exists():
        for name in (WEIGHTS, METADATA):
            shutil.copyfile(folder / (name + BEFORE), folder / name)
        return (f"--backup: the last checkpoint in {folder} was torn (the runtime stopped while it was written); "
                "this fit resumed from the one before it.")
    aside = folder.with_name(f"{folder.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(aside)
    return (f"--backup: the checkpoint in {folder} was torn and none before it was whole; it was set aside as "
            f"{aside}, and this fit started afresh.")


def intact(folder: Path, suffix: str) -> bool:
    """Whether the checkpoint (``suffix`` "": the latest; ".bkp": the one before) reads whole: none at all,
    or weights that h5py reads to the end with metadata that says their epoch."""
    weights, metadata = folder / (WEIGHTS + suffix), folder / (METADATA + suffix)
    if not weights.exists():
        return not metadata.exists() or suffix == BEFORE
    try:
        epoch = json.loads(metadata.read_text())["epoch"]
        if not isinstance(epoch, int):
            return False
        import h5py

        with h5py.File(weights, "r") as f:
            f.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except (OSError, ValueError, KeyError, TypeError):  # a torn file, torn JSON, a missing key
        return False
    return True


def backup_key(model: Any, signature: ModelSignature) -> str:
    """The folder name of a model's backup: its signature id, and a hash of everything that makes a
    training run the same: its layers' settings (units, filters...; names left out, since Keras
    numbers them anew in each model) and how it was compiled (the optimizer and its settings, the
    loss, the metrics). A model of the same layers compiled otherwise (SGD and MSE, then Adam and MAE)
    once resumed from the other one's weights."""
    try:
        compiled = model.get_compile_config() or {}
    except Exception:  # noqa: BLE001 - a model compiled in a way Keras cannot write out: its layers alone
        compiled = {}
    # how it runs (jit, steps per call, eager) does not change what it learns: a run resumes across them
    compiled = {k: v for k, v in compiled.items() if k not in ("jit_compile", "steps_per_execution", "run_eagerly")}
    configs: list[Any] = [_unnamed(compiled)]
    for layer in getattr(model, "layers", []):
        try:
            config = layer.get_config()
        except Exception:  # noqa: BLE001 - a custom layer without get_config: its type stands in
            config = {}
        configs.append({k: v for k, v in config.items() if k != "name"})
    # an object in a config is named by its type: its repr may hold an address that changes each run
    text = json.dumps(configs, sort_keys=True, default=lambda value: type(value).__name__)
    return f"{signature.id}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _unnamed(compiled: dict) -> dict:
    """A compile config without the optimizer's name: Keras numbers it anew in each model ("adam",
    "adam_1"). Other names stay: a dtype policy's name, for one, is what it is."""
    optimizer = compiled.get("optimizer")
    if isinstance(optimizer, dict) and isinstance(optimizer.get("config"), dict):
        config = {k: v for k, v in optimizer["config"].items() if k != "name"}
        compiled = {**compiled, "optimizer": {**optimizer, "config": config}}
    return compiled


def backup_bytes(model: Any) -> int:
    """Room a backup of ``model`` needs: two checkpoints (the latest and the one before), each the
    weights and as much again twice over for the optimizer's state (Adam keeps two slots a weight)."""
    weights = sum(int(np.prod(v.shape)) * np.dtype(str(getattr(v.dtype, "name", v.dtype))).itemsize
                  for v in model.weights)
    return 2 * (3 * weights + FORMAT_ROOM)
