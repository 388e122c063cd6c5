"""``%fit_history``: past runs listed, or chosen runs side by side (one column per run)."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import compare
from .history import latest_per_device
from .tables import NA, Table, fmt, to_html, to_text


@dataclass
class HistoryView:
    path: str
    records: list[dict]  # what is shown: the listing, or the compared runs in column order
    compare: bool = False
    warnings: list[str] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "compare": self.compare, "records": self.records, "warnings": self.warnings, "note": self.note}

    def tables(self) -> list[Table]:
        notes = list(self.warnings) + ([self.note] if self.note else [])
        if not self.records:
            return [Table(f"Run history ({self.path})", [], notes=notes or ["No runs recorded yet."])]
        return [_compare_table(self, notes) if self.compare else _list_table(self, notes)]

    def __str__(self) -> str:
        return to_text(self.tables())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text("HistoryView(...)" if cycle else str(self))

    def _repr_html_(self) -> str:
        return to_html(self.tables())


def select(records: list[dict], ids: list[str] | None) -> tuple[list[dict], str | None]:
    """Runs to compare: those named, or the latest run of the newest model on each device and machine."""
    if ids:
        by_id = {r.get("id"): r for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"no run with id {', '.join(missing)} in the history")
        return [by_id[i] for i in ids], None
    if not records:
        return [], None
    latest = latest_per_device(records, records[-1].get("signature_id"))
    chosen = sorted(latest, key=lambda r: (not str(r.get("device", "")).startswith("CPU"), r.get("time", "")))
    return chosen, f"The latest run of {records[-1].get('model')} on each device and machine."


def _where(rec: dict) -> str:
    env = rec.get("env") or {}
    return f"{env.get('runtime', '?')} on {env.get('host', '?')}"


def _device(rec: dict) -> str:
    name = rec.get("device_name")
    device = rec.get("device") or "?"
    return f"{device} ({name})" if name and name != "CPU" else device


def _epoch_s(rec: dict):
    if rec.get("epoch_mean_s") is not None:
        return rec["epoch_mean_s"], "measured"
    if rec.get("projected_epoch_s") is not None:
        return rec["projected_epoch_s"], "projected"
    step = rec.get("step_mean_s") or rec.get("step_median_s")  # the mean: an epoch is the sum of its steps
    if rec.get("steps_per_epoch") and step:
        return rec["steps_per_epoch"] * step, "projected"
    return None, None


def _list_table(view: HistoryView, notes: list[str]) -> Table:
    rows = []
    for rec in view.records:
        epoch, how = _epoch_s(rec)
        sig = rec.get("signature") or {}
        rows.append([
            rec.get("id", "?"),
            str(rec.get("time", "?")).replace("T", " ").replace("+00:00", "Z"),
            _where(rec),
            f"{rec.get('model', '?')} ({fmt(sig.get('params'), ',')} params)",
            rec.get("kind", "?"),
            _device(rec),
            fmt(rec.get("step_median_s") and rec["step_median_s"] * 1000, ".2f"),
            fmt(epoch, ".1f", " s") + (" (proj.)" if how == "projected" else ""),
            fmt(rec.get("samples_per_s"), ",.0f"),
        ])
    header = ["id", "when (UTC)", "where", "model", "kind", "device", "ms/step", "s/epoch", "samples/s"]
    return Table(f"Run history ({view.path}), last {len(rows)}", rows, header, notes)


def _compare_table(view: HistoryView, notes: list[str]) -> Table:
    runs = view.records
    cpu = next((r for r in runs if str(r.get("device", "")).startswith("CPU") and r.get("step_median_s")), None)

    def row(label, get):
        return [label] + [get(r) for r in runs]

    def epoch(rec):
        value, how = _epoch_s(rec)
        return NA if value is None else f"{value:.1f} s ({how})"

    def speedup(rec):
        if cpu is None:
            return NA
        value = compare.speedup((cpu.get("step_mean_s"), cpu.get("step_median_s")), (rec.get("step_mean_s"), rec.get("step_median_s")))
        return NA if value is None else f"{value:.1f}x"

    rows = [
        row("run", lambda r: f"{r.get('id')} ({r.get('kind')})"),
        row("where", _where),
        row("when (UTC)", lambda r: str(r.get("time", "?")).replace("T", " ").replace("+00:00", "Z")),
        row("ms/step median", lambda r: fmt(r.get("step_median_s") and r["step_median_s"] * 1000, ".2f")),
        row("ms/step p90", lambda r: fmt(r.get("step_p90_s") and r["step_p90_s"] * 1000, ".2f")),
        row("ms/step mean", lambda r: fmt(r.get("step_mean_s") and r["step_mean_s"] * 1000, ".2f")),
        row("s/epoch", epoch),
        row("samples/s", lambda r: fmt(r.get("samples_per_s"), ",.0f")),
        row("speed-up vs CPU", speedup),
        row("GPU utilisation", lambda r: fmt(r.get("gpu_util_mean"), ".0f", "%")),
    ]
    header = [""] + [_device(r) for r in runs]
    model = runs[0].get("model", "?")
    return Table(f"Runs of {model} side by side ({view.path})", rows, header, notes)
