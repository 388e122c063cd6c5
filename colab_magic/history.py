"""Run records on disk: one JSON object per line, appended and never rewritten.

This is how a Colab CPU-runtime run and a later GPU-runtime run, on different machines, end up in one
table: both append to ``<MyDrive>/colab_magic/runs.jsonl`` once ``%mount_drive`` has run.

Appends are crash-safe: a record is one ``write`` of one line under an exclusive ``flock``, so two
kernels appending at once never interleave, and a process killed mid-write can only leave a torn
last line, which the reader skips with a warning and the next append terminates first. Earlier
records are never touched.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import socket
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; appends are still single writes
    fcntl = None

DEFAULT_PATH = "~/.colab_magic/runs.jsonl"


def default_path() -> Path:
    from . import drive

    mounted = drive.current()
    if mounted is not None:
        return mounted.mydrive / "colab_magic" / "runs.jsonl"
    return Path(DEFAULT_PATH).expanduser()


def append(record: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: the last byte
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a torn line from a killed writer: end it, so this record stands alone
        _write_all(fd, line)
        os.fsync(fd)  # on Drive, this is what survives a runtime disconnect
    finally:
        os.close(fd)  # closing releases the lock


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read(path: Path) -> tuple[list[dict], list[str]]:
    """All intact records, oldest first, and a warning per line that could not be read."""
    path = Path(path)
    if not path.exists():
        return [], []
    records, warnings = [], []
    lines = path.read_bytes().split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError:
            what = "a torn last line" if number == len(lines) else f"line {number} (torn by an interrupted write)"
            warnings.append(f"skipped {what} in {path}")
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, warnings


def latest_per_device(records: list[dict], signature: str, keep=None) -> list[dict]:
    """The latest timed run of one model (``signature``) on each device and machine, oldest first.

    At the same time, the user's own fit beats a --compare run of it. ``keep`` filters further.
    """
    latest: dict = {}
    for rec in records:
        if rec.get("signature_id") != signature or not rec.get("step_median_s"):
            continue
        if keep is not None and not keep(rec):
            continue
        key = (rec.get("device_name"), (rec.get("env") or {}).get("host"))
        rank = (rec.get("time", ""), rec.get("kind") == "fit")
        if key not in latest or rank >= (latest[key].get("time", ""), latest[key].get("kind") == "fit"):
            latest[key] = rec
    return list(latest.values())


def environment(runtime, gpu_names: list[str]) -> dict:
    import keras

    return {
        "runtime": runtime.label,
        "runtime_kind": runtime.kind,
        "colab_accelerator": runtime.accelerator,
        "host": socket.gethostname(),
        "gpus": gpu_names,
        "python": platform.python_version(),
        "keras": keras.__version__,
    }


def signature_id(signature: dict) -> str:
    text = json.dumps([signature.get("layers"), signature.get("params"), signature.get("input_shape")])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def make_record(report, env: dict, kind: str = "fit") -> dict:
    """The history line for one FitReport."""
    step = report.step or {}
    closed = [e for e in report.epochs if e["time_s"] is not None]
    device_gpu = None
    if report.device and report.device.startswith("GPU"):
        pos = int(report.device.split(":")[1])
        names = env.get("gpus") or []
        device_gpu = names[pos] if pos < len(names) else None
    gpu_util = next((g["util_mean"] for g in report.gpus if report.device == f"GPU:{g['index']}"), None)
    return {
        "id": uuid.uuid4().hex[:8],
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kind": kind,
        "model": report.model,
        "signature": report.signature,
        "signature_id": signature_id(report.signature or {}),
        "batch_size": report.batch_size,
        "steps_per_epoch": report.steps_per_epoch,
        "backend": report.backend,
        "device": report.device,
        "device_name": device_gpu or ("CPU" if report.device and report.device.startswith("CPU") else None),
        "complete": report.complete,
        "total_steps": report.total_steps,
        "step_median_s": step.get("median"),
        "step_p90_s": step.get("p90"),
        "step_mean_s": step.get("mean"),
        "first_step_s": report.first_step_s,
        "epoch_mean_s": sum(e["time_s"] for e in closed) / len(closed) if closed and kind == "fit" else None,
        "samples_per_s": report.samples_per_s,
        "gpu_util_mean": gpu_util,
        "cpu_util_mean": report.host.get("cpu_system_mean"),
        "env": env,
    }
