"""How a :class:`~colab_magic.history.HistoryView` reads: past runs listed, or chosen runs side by side
(one column per run)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .tables import Table
from .units import NA, fmt, fmt_interval, ms_figure


def tables(view: Any) -> list[Table]:
    notes = list(view.warnings) + ([view.note] if view.note else [])
    if not view.records:
        return [Table(f"Run history ({view.path})", [], notes=notes or ["No runs recorded yet."])]
    if view.cluster:
        return [_cluster_table(view, notes)]
    return [_compare_table(view, notes) if view.compare else _list_table(view, notes)]


def _where(run: Any) -> str:
    env = run.env or {}
    return f"{env.get('runtime', 'unknown')} on {env.get('host', 'unknown')}"


def _device(run: Any) -> str:
    return f"{run.device} ({run.name})" if run.name and run.name != "CPU" else run.device


# a listing names the loops other than Keras' fit (records written before `loop` are Keras fits)
LOOPS = {"torch": ", PyTorch loop", "marked": ", colab_magic.step()"}


def _when(run: Any) -> str:
    return str(run.time or "unknown").replace("T", " ").replace("+00:00", "Z")


def _list_table(view: Any, notes: list[str]) -> Table:
    rows = []
    for run in view.runs:
        epoch, how = run.epoch_s()
        params = run.signature.params if run.signature else None
        rows.append([
            run.id or "unknown",
            _when(run),
            _where(run),
            f"{run.model or 'unknown'} ({fmt(params, ',')} params)",
            run.kind + (f" ({run.variant})" if run.variant else "") + LOOPS.get(run.loop, ""),
            _device(run),
            ms_figure(run.step_median_s),
            fmt(epoch, ".1f", " s") + (" (proj.)" if how == "projected" else ""),
            fmt(run.samples_per_s, ",.0f"),
        ])
    header = ["id", "when (UTC)", "where", "model", "kind", "device", "ms/step", "s/epoch", "samples/s"]
    return Table(f"Run history ({view.path}), last {len(rows)}", rows, header, notes)


def _row(label: str, get: Callable[[Any], str], runs: list) -> list[str]:
    """A row of a side-by-side table: one column per run."""
    return [label] + [get(r) for r in runs]


def _compare_table(view: Any, notes: list[str]) -> Table:
    runs = view.runs
    cpu = next((r for r in runs if r.is_cpu and r.step_median_s), None)

    def row(label: str, get: Callable[[Any], str]) -> list[str]:
        return _row(label, get, runs)

    def epoch(run: Any) -> str:
        value, how = run.epoch_s()
        return NA if value is None else f"{value:.1f} s ({how})"

    noisy = []

    def speedup(run: Any) -> str:
        value = run.speedup_over(cpu) if cpu is not None else None
        if value is None or cpu is None:
            return NA
        if run is cpu or not (run.step_mean_interval_s and cpu.step_mean_interval_s):
            return f"{value:.1f}x"
        interval = run.step_speedup_interval(cpu)  # around the value shown: the ratio of the mean steps
        within = interval is not None and interval[0] <= 1 <= interval[1]
        if within:
            noisy.append(run)
        return fmt_interval(value, interval, ".2f", "x") + (" ~" if within else "")

    def mean(run: Any) -> str:
        return (fmt_interval(run.step_mean_s, run.step_mean_interval_s, ".2f", scale=1000)
                if run.step_mean_s and run.step_mean_interval_s else ms_figure(run.step_mean_s))

    rows = [
        row("run", lambda r: f"{r.id} ({r.kind})"),
        row("where", _where),
        row("when (UTC)", _when),
        row("ms/step median", lambda r: ms_figure(r.step_median_s)),
        row("ms/step p90", lambda r: ms_figure(r.step_p90_s)),
        row("ms/step mean", mean),
        row("s/epoch", epoch),
        row("samples/s", lambda r: fmt(r.samples_per_s, ",.0f")),
        row("speed-up vs CPU", speedup),
        row("GPU utilisation", lambda r: fmt(r.gpu_util_mean, ".0f", "%")),
    ]
    header = [""] + [_device(r) + (f", {r.variant}" if r.variant else "") for r in runs]
    if any(r.step_mean_interval_s for r in runs):
        notes = notes + ["In brackets: 95% intervals (a fit's from the scatter of its steps; a --compare or "
                         "--whatif trial's also from the drift of short windows)."]
    if noisy:
        notes = notes + ["~: the interval holds 1.0x, so the difference from the CPU is within the noise."]
    return Table(f"Runs of {runs[0].model or 'unknown'} side by side ({view.path})", rows, header, notes)


def _cluster_table(view: Any, notes: list[str]) -> Table:
    runs = view.runs

    def row(label: str, get: Callable[[Any], str]) -> list[str]:
        return _row(label, get, runs)

    rows = [
        row("host", lambda r: (r.env or {}).get("host", "unknown")),
        row("devices", lambda r: ", ".join((r.cluster or {}).get("local_devices") or []) or r.device),
        row("ms/step median", lambda r: ms_figure(r.step_median_s)),
        row("ms/step mean", lambda r: ms_figure(r.step_mean_s)),
        row("s/epoch", lambda r: fmt(r.epoch_mean_s, ".2f")),
        row("samples/s (global)", lambda r: fmt(r.samples_per_s, ",.0f")),
        row("host CPU", lambda r: fmt(r.cpu_util_mean, ".0f", "%")),
        row("GPU utilisation", lambda r: fmt(r.gpu_util_mean, ".0f", "%")),
        row("input wait", lambda r: fmt(r.input_wait_share and 100 * r.input_wait_share, ".0f", "%")),
        row("run id", lambda r: r.id or "unknown"),
    ]
    header = [""] + [f"process {(r.cluster or {}).get('task_index', 'unknown')}" for r in runs]
    notes = ([view.verdict] if view.verdict else []) + notes
    return Table(f"Processes of one run of {runs[0].model or 'unknown'} side by side ({view.path})", rows, header, notes)
