"""Run records on disk: one JSON object per line, appended and never rewritten.

This is how a Colab CPU-runtime run and a later GPU-runtime run, on different machines, end up in one
table: both append to ``<MyDrive>/colab_magic/runs.jsonl`` once ``%mount_drive`` has run.

Appends are crash-safe: a record is one ``write`` of one line under an exclusive ``flock``, so two
kernels appending at once never interleave, and a process killed mid-write can only leave a torn
last line, which the reader skips with a warning and the next append terminates first. Earlier
records are never touched.
"""

from __future__ import annotations

import json
import os
import platform
import socket
from dataclasses import dataclass, field
from pathlib import Path

from . import drive
from .run_summary import RunSummary
from .tables import Rendered

try:
    import fcntl
except ImportError:  # Windows: no flock; appends are still single writes
    fcntl = None

DEFAULT_PATH = "~/.colab_magic/runs.jsonl"


def default_path() -> Path:
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


def latest_per_device(runs: list[RunSummary], signature_id: str | None, keep=None) -> list[RunSummary]:
    """The latest timed run of one model on each device and machine, oldest first.

    At the same time, the user's own fit beats a --compare run of it. ``keep`` filters further.
    """
    latest: dict = {}
    for run in runs:
        if run.signature_id != signature_id or not run.step_median_s:
            continue
        if keep is not None and not keep(run):
            continue
        key = (run.name, (run.env or {}).get("host"))
        rank = (str(run.time or ""), run.kind == "fit")
        if key not in latest or rank >= (str(latest[key].time or ""), latest[key].kind == "fit"):
            latest[key] = run
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


@dataclass
class HistoryView(Rendered):
    """What ``%fit_history`` shows: the latest runs listed, or chosen runs side by side."""

    _view = "colab_magic.history_view"

    path: str
    records: list[dict]  # what is shown, as read: the listing, or the compared runs in column order
    compare: bool = False
    warnings: list[str] = field(default_factory=list)
    note: str | None = None

    @property
    def runs(self) -> list[RunSummary]:
        return [RunSummary.from_record(rec) for rec in self.records]

    def to_dict(self) -> dict:
        return {"path": self.path, "compare": self.compare, "records": self.records, "warnings": self.warnings,
                "note": self.note}


def select(records: list[dict], ids: list[str] | None) -> tuple[list[dict], str | None]:
    """Records to compare: those named, or the latest run of the newest model on each device and
    machine (CPU first). Raises KeyError naming the ids that are not in the history."""
    if ids:
        by_id = {r.get("id"): r for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"no run with id {', '.join(missing)} in the history")
        return [by_id[i] for i in ids], None
    if not records:
        return [], None
    newest = RunSummary.from_record(records[-1])
    by_id = {r.get("id"): r for r in records}
    latest = latest_per_device([RunSummary.from_record(r) for r in records], newest.signature_id)
    latest.sort(key=lambda run: (not run.is_cpu, str(run.time or "")))
    return [by_id[run.id] for run in latest if run.id in by_id], f"The latest run of {newest.model} on each device and machine."
