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
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import drive, history_view
from .environment import Runtime
from .run_summary import RunSummary, is_pair
from .stats import quantile_of
from .tables import Rendered, Table

try:
    import fcntl
except ImportError:  # Windows: no flock; appends are still single writes
    fcntl = None  # type: ignore[assignment]

def default_path() -> Path:
    return drive.app_folder() / "runs.jsonl"


def append(record: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0), 0o644)  # read: the last byte
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HistoryError(f"The run history {path} is not a regular file (a pipe or a device?).")
        if path.is_symlink() and not _holds_records(fd):
            raise HistoryError(f"The run history {path} is a link to {os.path.realpath(path)}, which holds something "
                               "other than run records: nothing was written to it. Give the history its own file.")
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # a torn line from a killed writer: end it, so this record stands alone
        _write_all(fd, line)
        os.fsync(fd)  # on Drive, this is what survives a runtime disconnect
    finally:
        os.close(fd)  # closing releases the lock


def _holds_records(fd: int) -> bool:
    """Whether an open file is empty or starts with a run record (its first line a JSON object)."""
    first = os.pread(fd, 65536, 0).split(b"\n", 1)[0]
    if not first:
        return True
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:  # not JSON, or not text at all (UnicodeDecodeError is a ValueError)
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class HistoryError(Exception):
    """A history path that cannot be read or written, in one line."""


_TEXT_FIELDS = ("id", "time", "kind", "model", "device", "device_name", "signature_id", "backend", "variant")
_NUMBER_FIELDS = ("batch_size", "steps_per_epoch", "total_steps", "step_median_s", "step_p90_s", "step_mean_s",
                  "first_step_s", "epoch_mean_s", "projected_epoch_s", "samples_per_s", "gpu_util_mean",
                  "cpu_util_mean", "input_wait_share", "timed_s", "speedup")


def is_record(value: Any) -> bool:
    """A run record, as far as every reader relies on: a dict whose known fields have their types."""
    if not isinstance(value, dict):
        return False
    for key in _TEXT_FIELDS:
        if value.get(key) is not None and not isinstance(value[key], str):
            return False
    for key in _NUMBER_FIELDS:
        v = value.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return False
    if value.get("complete") is not None and not isinstance(value["complete"], bool):
        return False
    if value.get("timed_steps") is not None and not _is_int(value["timed_steps"]):
        return False
    if not all(value.get(key) is None or is_pair(value[key]) for key in _PAIR_FIELDS):
        return False
    return all(value.get(key) is None or (isinstance(value[key], dict) and check(value[key]))
               for key, check in (("env", _env_ok), ("signature", _signature_ok), ("cluster", _cluster_ok)))


# Nested fields, as far as a reader uses them: a record that fails is skipped and counted like a bad line.
_PAIR_FIELDS = ("step_mean_interval_s", "projected_epoch_interval_s", "speedup_interval")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _texts(value: Any, allow_none: bool = False) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) or (allow_none and v is None) for v in value)


def _env_ok(env: dict) -> bool:
    if not all(env.get(key) is None or isinstance(env[key], str) for key in ("runtime", "host", "python", "keras")):
        return False
    return env.get("gpus") is None or _texts(env["gpus"], allow_none=True)


def _signature_ok(signature: dict) -> bool:
    shape = signature.get("input_shape")
    return ((signature.get("layers") is None or _texts(signature["layers"]))
            and (signature.get("params") is None or _is_int(signature["params"]))
            and (shape is None or (isinstance(shape, list) and all(d is None or _is_int(d) for d in shape))))


def _cluster_ok(cluster: dict) -> bool:
    return (all(cluster.get(key) is None or _is_int(cluster[key]) for key in ("task_index", "workers"))
            and all(cluster.get(key) is None or isinstance(cluster[key], str) for key in ("run", "coordinator"))
            and (cluster.get("local_devices") is None or _texts(cluster["local_devices"])))


def read(path: Path) -> tuple[list[dict], list[str]]:
    """All valid records, oldest first, and one warning for the lines that are not (torn writes,
    hand edits). A missing file is an empty history; one that cannot be read raises HistoryError.
    Opening never blocks: a pipe or a device is refused, not read."""
    path = Path(path)
    data = _read_regular_file(path)
    if data is None:
        return [], []
    records, skipped = [], []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: a line of thousands of nested brackets
            record = None
        if is_record(record):
            records.append(record)
        else:
            skipped.append(number)
    return records, _skipped_warning(path, skipped, len(lines))


def _read_regular_file(path: Path) -> bytes | None:
    fd: int | None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except PermissionError:
        raise HistoryError(f"No permission to read the run history {path}.") from None
    except (OSError, ValueError) as exc:
        raise HistoryError(f"Cannot open the run history {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise HistoryError(f"The run history {path} is a folder; give a file path (e.g. {path / 'runs.jsonl'}).")
        if not stat.S_ISREG(mode):
            raise HistoryError(f"The run history {path} is not a regular file (a pipe or a device?).")
        with os.fdopen(fd, "rb") as fh:
            fd = None
            return fh.read()
    except OSError as exc:
        raise HistoryError(f"Cannot read the run history {path}: {exc.strerror or exc}.") from None
    finally:
        if fd is not None:
            os.close(fd)


def _skipped_warning(path: Path, skipped: list[int], line_count: int) -> list[str]:
    if not skipped:
        return []
    if len(skipped) == 1:
        number = skipped[0]
        what = "a torn last line" if number == line_count else f"line {number} (not a run record: a torn write or an edit)"
        return [f"skipped {what} in {path}"]
    shown = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
    return [f"skipped {len(skipped)} lines in {path} that are not run records (torn writes or edits): lines {shown}"]


def latest_per_device(runs: list[RunSummary], signature_id: str | None,
                      keep: Callable[[RunSummary], bool] | None = None) -> list[RunSummary]:
    """The latest timed run of one model on each device and machine, oldest first.

    At the same time, the user's own fit beats a --compare run of it. ``keep`` filters further.
    """
    latest: dict = {}
    for run in runs:
        if run.signature_id != signature_id or not run.step_median_s or run.variant:
            continue  # a --whatif variant is another set-up of the model, not the model on a device
        if keep is not None and not keep(run):
            continue
        key = (run.name, (run.env or {}).get("host"))
        rank = (str(run.time or ""), run.kind == "fit")
        if key not in latest or rank >= (str(latest[key].time or ""), latest[key].kind == "fit"):
            latest[key] = run
    return list(latest.values())


def environment(runtime: Runtime, gpu_names: list[str | None]) -> dict:
    """Where the runs were made; the versions of the frameworks the session imported (a record never
    imports one: a PyTorch notebook would pay seconds for TensorFlow)."""
    env = {
        "runtime": runtime.label,
        "runtime_kind": runtime.kind,
        "colab_accelerator": runtime.accelerator,
        "host": socket.gethostname(),
        "gpus": gpu_names,
        "python": platform.python_version(),
    }
    for name in ("keras", "torch"):
        if name in sys.modules:
            env[name] = getattr(sys.modules[name], "__version__", None)
    return env


@dataclass
class HistoryView(Rendered):
    """What ``%fit_history`` shows: the latest runs listed, or chosen runs side by side."""


    path: str
    records: list[dict]  # what is shown, as read: the listing, or the compared runs in column order
    compare: bool = False
    warnings: list[str] = field(default_factory=list)
    note: str | None = None
    cluster: bool = False  # the processes of one multi-process run, side by side
    verdict: str | None = None  # --cluster: which process holds the others back, if one does

    @property
    def runs(self) -> list[RunSummary]:
        return [RunSummary.from_record(rec) for rec in self.records]

    def tables(self) -> list[Table]:
        return history_view.tables(self)

    def to_dict(self) -> dict:
        return {"path": self.path, "compare": self.compare, "records": self.records, "warnings": self.warnings,
                "note": self.note, "cluster": self.cluster, "verdict": self.verdict}


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
    if not any(run.is_gpu for run in latest):  # a CPU run beside itself (1.0x) reads as "the GPU gives nothing"
        return [], NO_GPU_RUN.format(model=newest.model)
    return [by_id[run.id] for run in latest if run.id in by_id], f"The latest run of {newest.model} on each device and machine."


NO_GPU_RUN = ("No GPU run of {model} in the history yet, so nothing to set its CPU runs beside. Run the same cell "
              "in a GPU runtime (with %mount_drive the history follows you there), then %fit_history --compare.")


# A process stands out when its figure is this far above the others' median (percentage points).
STANDS_OUT_PCT = 20.0
STANDS_OUT_INPUT = 0.10  # of a step waiting for data


def select_cluster(records: list[dict], run: str | None = None) -> tuple[list[dict], str | None]:
    """The records of one multi-process run (the latest, or ``run``), one per process in process
    order. Raises KeyError when there is none."""
    grouped = [r for r in records if isinstance(r.get("cluster"), dict) and r.get("kind") == "fit"]
    if run is None:
        if not grouped:
            raise KeyError("no multi-process run in the history (records of keras.distribution runs on "
                           "several processes carry 'cluster')")
        run = grouped[-1]["cluster"].get("run")
    chosen = {}
    for rec in grouped:
        if rec["cluster"].get("run") == run:
            chosen[rec["cluster"].get("task_index")] = rec  # a process recorded twice: its latest
    if not chosen:
        raise KeyError(f"no multi-process run {run} in the history")
    ordered = [chosen[k] for k in sorted(chosen, key=lambda k: (not isinstance(k, int), k if isinstance(k, int) else 0))]
    workers = ordered[0]["cluster"].get("workers")
    note = f"Run {run}: {len(ordered)} of {workers} processes recorded."
    return ordered, note


def straggler(runs: list[RunSummary]) -> str:
    """Step times agree by construction (every process waits for the others each step), so the one
    that holds the others back shows in its own figures: the busiest host, GPU or input pipeline."""
    checks = [
        ("host CPU", lambda r: r.cpu_util_mean, STANDS_OUT_PCT, "%", 1.0),
        ("GPU utilisation", lambda r: r.gpu_util_mean, STANDS_OUT_PCT, "%", 1.0),
        ("input wait", lambda r: r.input_wait_share, STANDS_OUT_INPUT, "% of a step", 100.0),
    ]
    found = []
    for label, get, threshold, unit, scale in checks:
        values = [(r, get(r)) for r in runs if get(r) is not None]
        if len(values) < 2:
            continue
        top, value = max(values, key=lambda pair: pair[1])
        median = quantile_of(sorted(v for r, v in values if r is not top), 0.5)
        if value - median >= threshold - 1e-9:  # at the threshold counts (0.15 - 0.05 is 0.0999... in floats)
            index = (top.cluster or {}).get("task_index", "?")
            found.append(f"process {index}'s {label} ({value * scale:.0f}{unit} against {median * scale:.0f}{unit} "
                         "on the others)")
    if not found:
        return ("No process stands out: host CPU and GPU utilisation within 20 points of the others, input wait "
                "within 10% of a step. A slow step everywhere points at the all-reduce (the network) or the model.")
    return "Likely straggler: " + "; ".join(found) + ". The other processes wait for it at every step."
