"""How a :class:`~colab_magic.report.TimedFitResult` reads: the answer first (a headline per fit, and
a missing GPU explained once), then the evidence in a fixed order: verdicts, the CPU | GPU
comparison, the key training figures, and the details (per epoch, hardware side by side, sampler)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import brief_view
from .parts import GpuSummary
from .tables import Table
from .units import (
    NA,
    flop_count,
    fmt,
    fmt_bytes,
    fmt_interval,
    fmt_s,
    ms_or_na,
    seconds,
    seconds_column,
)

MAX_EPOCH_ROWS = 20  # a long run shows its first and last epochs


def tables(result: Any) -> list[Table]:
    if not result.reports:
        notes = [f"{result.headline[:-1]} (it ran in {fmt_s(result.cell_s)})."] + result.notes
        if not result.complete:
            notes.append(f"The cell stopped: {result.error}.")
        return [Table("%%timed_fit", [], notes=notes)]
    lines = result.headlines
    out = [Table(lines[0], [], notes=lines[1:], kind="answer")]
    if result.no_gpu:
        out.append(Table("No GPU", [], notes=[result.no_gpu]))
    count = len(result.reports)
    for report in result.reports:
        out.extend(_fit_tables(report, count, result.comparison_for(report), result.whatif_for(report)))
    result_notes = list(result.notes)
    if any(brief_view.has_interval(t) for t in [*result.comparisons, *result.whatifs]):
        result_notes.append(brief_view.INTERVAL_MEANING)
    if result.history_path:
        result_notes.append(f"Recorded in {result.history_path} (%fit_history lists it).")
    if result_notes:
        out.append(Table("Notes", [], notes=result_notes))
    if not result.complete and not any(r.failed for r in result.reports):  # a failed fit's traceback says it
        out.append(Table("Cell", [], notes=[f"The cell stopped: {result.error}. Figures above cover what ran."]))
    return out


def _fit_tables(r: Any, count: int, comparison: Any, whatif: Any = None) -> list[Table]:
    which = f"Fit {r.index}: " if count > 1 else ""
    if r.failed:  # the headline says where; no verdicts or statistics from a step or two
        return []
    out = [_verdicts(r, which)]
    if r.timeline_png is not None:
        out.append(Table(_title(which, "timeline"), [], image=r.timeline_png))
    if comparison is not None:
        out.append(comparison_table(comparison))
    if whatif is not None:
        out.append(whatif_table(whatif))
    out.append(_training(r, which))
    per_epoch = [_per_epoch(r, which)] if r.epochs_seen else []  # else one span, which the training table gives
    details = per_epoch + ([_callbacks(r, which)] if r.callbacks else []) + [_hardware(r, _title(which, "hardware: host (CPU)" + (" and GPUs" if r.gpus else "")))]
    for table in details:
        table.kind = "details"
    return out + details


def _title(which: str, name: str) -> str:
    """"Fit 2: training" when the cell ran several fits, else "Training"."""
    return f"{which}{name}" if which else name[0].upper() + name[1:]


def _verdicts(r: Any, which: str) -> Table:
    """A numbered list (each verdict a paragraph: what, the evidence, the fix), not a table: the
    evidence and the fix are sentences, which read badly squeezed into a column."""
    lines = [f"({n}) {f.title}. Evidence: {f.evidence}. Fix: {f.fix}." for n, f in enumerate(r.findings, 1)]
    check = r.input_wait
    # Passed: the verdicts (whose thresholds decide) found no input-bound step. That finding comes
    # second at most (after GPU-unused), so the cap on findings never hides it.
    if check is not None and all(f.rule != "input_bound" for f in r.findings):
        interval = check.wait_share_interval
        share = fmt_interval(check.wait_share, interval, ".1f", "%", 100)
        # with an interval, the verdict went by its low end: a wait the noise could explain was let pass
        verdict = "not input-bound beyond the noise of the timing" if interval else "not input-bound"
        if check.source == "DataLoader":  # measured in the steps themselves: no check ran
            lines.append(f"Not input-bound: {share} of each step waits in the DataLoader ({check.steps} steps).")
        else:
            lines.append(f"Input check passed: {share} of each step waits for data: {verdict} ({check.steps} steps "
                         f"of a copy of the model, {fmt_s(check.check_s)}).")
    if not lines:
        lines.append("No bottleneck found: none of the verdicts' conditions held (README: Verdicts).")
    title = _title(which, "verdicts")
    if not r.complete:
        title += f" - INCOMPLETE ({r.error})"
    return Table(title, [], notes=lines)


def _hardware(r: Any, title: str) -> Table:
    h = r.host
    cores = f"{h.logical_cores} cores"  # CPU in % of all cores, as the plot and the live line show it
    header = ["", "Host (CPU)"] + [g.label for g in r.gpus]

    def row(label: str, host: str, gpu: Callable[[GpuSummary], str]) -> list[str]:
        return [label, host] + [gpu(g) for g in r.gpus]

    rows = [
        row(
            "utilisation mean / p95",
            f"{fmt(h.cpu_system_mean, '.0f', '%')} / {fmt(h.cpu_system_p95, '.0f', '%')} of {cores}",
            lambda g: f"{fmt(g.util_mean, '.0f', '%')} / {fmt(g.util_p95, '.0f', '%')} of the time a kernel ran ({g.util_source})",
        ),
        row(
            "this process",
            f"{_of_all(h.cpu_process_mean, h)} / {_of_all(h.cpu_process_p95, h)} of {cores}",
            lambda g: f"{fmt_bytes(g.process_memory_peak)} of GPU memory at the peak",
        ),
        row(
            "memory peak / total",
            f"{fmt_bytes(h.ram_used_peak)} / {fmt_bytes(h.ram_total)}; this process {fmt_bytes(h.own_peak)} of it",
            lambda g: f"{fmt_bytes(g.memory_peak)} / {fmt_bytes(g.memory_total)}",
        ),
    ]
    if r.framework_memory_peak is not None and r.gpus:
        rows.append(row("framework peak", "", lambda g: fmt_bytes(r.framework_memory_peak) if g.index == 0 else ""))
    if r.gpus:
        rows += [
            row("SMs busy / occupancy (GPM)", "", _sm_activity),
            row("tensor cores / DRAM (GPM)", "", lambda g: "" if g.gpm_note else
                f"{fmt(g.tensor_activity_pct, '.1f', '%')} active / {fmt(g.dram_bw_pct, '.0f', '%')} of bandwidth"),
            row("power mean / limit", "", lambda g: f"{fmt(g.power_mean_w, '.0f', ' W')} / {fmt(g.power_limit_w, '.0f', ' W')}"),
            row("energy", "", _energy),
            row("temperature max", "", lambda g: fmt(g.temperature_max_c, ".0f", " °C")),
            row("SM clock mean", "", lambda g: fmt(g.sm_clock_mean_mhz, ".0f", " MHz")),
            row("clock events", "", _clock_events),
        ]
    cost = r.sampler.cost_pct_of_core
    notes = [
        f"Sampled every {r.sampler.interval_s:g} s ({r.sampler.ticks} readings); "
        f"sampler cost {fmt(cost, '.2f', '%')} of one core."
    ]
    return Table(title, rows, header, notes)


def _of_all(one_core_pct: float | None, h: Any) -> str:
    """The process's CPU (sampled in % of one core) in % of all cores."""
    return fmt(one_core_pct / max(1, h.logical_cores) if one_core_pct is not None else None, ".0f", "%")


def _sm_activity(g: GpuSummary) -> str:
    if g.gpm_note:
        return f"not read: {g.gpm_note}"
    text = f"{fmt(g.sm_activity_pct, '.0f', '%')} / {fmt(g.sm_occupancy_pct, '.0f', '%')}"
    return text + (f" ({g.gpm_failures} readings failed)" if g.gpm_failures else "")


def _energy(g: GpuSummary) -> str:
    if g.energy_j is None:
        return NA
    text = f"{g.energy_j:.0f} J"
    return text + (" (estimated from power)" if g.energy_source == "estimated from power" else "")


def _clock_events(g: GpuSummary) -> str:
    events = {k: v for k, v in g.clock_events.items() if k != "gpu_idle"}
    if not events:
        return "none"
    text = ", ".join(f"{k} {100 * v:.0f}%" for k, v in events.items())
    return text + (" of readings (throttling)" if g.throttled_fraction > 0 else " of readings")


def _training(r: Any, which: str) -> Table:
    s = r.step
    closed = r.closed_epochs
    epochs = f"{len(r.epochs)} epoch" + ("s" if len(r.epochs) != 1 else "")
    if r.epochs_seen:
        steps = f"{r.total_steps} ({epochs}" + (f" of {r.steps_per_epoch} steps" if r.steps_per_epoch else "") + ")"
    else:
        steps = f"{r.total_steps} (no epochs seen: {brief_view.epochs_unseen(r)})"
    batch = fmt(r.batch_size) if r.batch_size else (r.batch_note or NA)
    steps += f"; batch {batch}"
    if r.steps_per_execution > 1:
        steps += f"; steps_per_execution {r.steps_per_execution} (timed per call, divided by the steps it ran)"
    rows = [
        ["ms/step", f"median {ms_or_na(s.median)}, p10 {ms_or_na(s.p10)}, p90 {ms_or_na(s.p90)}, mean {ms_or_na(s.mean)}" if s else NA],
    ]
    if closed and r.epoch_mean_s is not None:  # None where the loop marked no epochs
        val = sum(e.val_s for e in closed) / len(closed)
        text = f"{seconds(r.epoch_mean_s)} (mean of {len(closed)})"
        rows.append(["s/epoch", text + (f", of which validation {seconds(val)}" if val else "")])
    rows.append(["samples/s", fmt(r.samples_per_s, ",.0f")])
    rows.append(["steps", steps])
    if len(r.devices) > 1:  # data parallel: each step's batch is split over these
        rows.append(["replicas", f"{len(r.devices)}: {', '.join(r.devices)}"])
    if r.loop == "keras":
        rows.append(["first step", f"{fmt_s(r.first_step_s)}: tracing and compiling, left out of ms/step"])
    else:  # timed from its own optimizer step (or mark) only: its duration would mislead, as in the brief text
        rows.append(["first step", "left out of ms/step (its warm-up)"])
    if r.flops_per_step is not None:
        rows.append(["compute", _compute(r)])
    rows.append(["fit wall time", fmt_s(r.wall_s)])
    notes = [f"FLOPs: {r.flops_note}."] if r.flops_note else []
    notes += list(r.notes)
    return Table(_title(which, "training"), rows, notes=notes)


def _compute(r: Any) -> str:
    text = f"{flop_count(r.flops_per_step)}/step by {r.flops_method}"
    if r.achieved_flops_per_s is not None:
        text += f"; {flop_count(r.achieved_flops_per_s)}/s from the mean step"
    if r.mfu is not None:
        text += f"; MFU {100 * r.mfu:.1f}% of the {r.peak_basis}"
    elif r.peak_basis:
        text += f"; {r.peak_basis}"
    return text


def _per_epoch(r: Any, which: str) -> Table:
    gpu_cols = [f"GPU {g.index} (J)" for g in r.gpus]
    timed_callbacks = bool(r.callbacks)
    header = (["epoch", "time", "before", "in steps", "validation", "after"]
              + (["callbacks"] if timed_callbacks else []) + ["steps", "ms/step"] + gpu_cols)
    epochs = r.epochs
    rows = []
    shown = epochs if len(epochs) <= MAX_EPOCH_ROWS else epochs[:10] + [None] + epochs[-9:]
    for e in shown:
        if e is None:
            rows.append(["..."] + [""] * (len(header) - 1))
            continue
        label = str(e.epoch) + ("" if e.complete else " (cut)")
        energy = [fmt(j, ".0f") for j in e.energy_j]
        rows.append(
            [label, seconds_column(e.time_s), seconds_column(e.before_steps_s), seconds_column(e.steps_s),
             seconds_column(e.val_s) if e.val_s else "-", seconds_column(e.after_steps_s)]
            + ([seconds_column(e.callbacks_s)] if timed_callbacks else []) + [str(e.steps), ms_or_na(e.step_median_s)]
            + energy
        )
    note = ("Seconds; time = before (the first step: setting up the data iterator, and closing the last one) + "
            "in steps + validation + after (the last step: epoch-end callbacks, logging)."
            + (" callbacks: what your callbacks took, within the others." if timed_callbacks else "")
            + " ms/step: the median." + (" GPU (J): energy." if r.gpus else ""))
    return Table(_title(which, "per epoch"), rows, header, [note])


def _callbacks(r: Any, which: str) -> Table:
    """The user's callbacks, slowest first, and colab_magic's own hooks apart."""
    total = sum(e.time_s for e in r.closed_epochs) or None
    rows = [[c.name, seconds_column(c.total_s), seconds_column(c.total_s / max(1, len(r.closed_epochs))),
             fmt(100 * c.total_s / total if total else None, ".1f", "%"), seconds_column(c.outside_s)]
            for c in r.callbacks]
    notes = ["Seconds in each callback's own hooks (on_train_batch_end, on_epoch_end...), by class; outside "
             "epochs: on_train_begin, and on_epoch_begin (it runs before the epoch's clock starts)."]
    if r.own_hooks_s is not None:
        notes.append(f"colab_magic's own hooks: {fmt_s(r.own_hooks_s)}, not counted above.")
    return Table(_title(which, "callbacks"), rows, ["callback", "total (s)", "per epoch (s)", "of the epochs",
                                                    "outside epochs (s)"], notes)


def comparison_table(c: Any) -> Table:
    title = f"CPU vs GPU: {c.model}, each device timed from the same start"
    if c.skipped:
        return Table(title, [], notes=[f"Skipped: {c.skipped}."] + c.notes)
    runs = c.runs
    if len(runs) == 1 and not runs[0].is_gpu:  # nothing to set it beside: the one line, and how to get a GPU side
        return Table(f"--compare: {c.model}", [], notes=[brief_view.compare_line(c)] + list(c.notes))
    header = [""] + [r.device + (f" ({r.name})" if r.name and r.name != "CPU" else "") for r in runs]

    def row(label: str, get: Callable[[Any], str]) -> list[str]:
        return [label] + [get(r) if r.error is None else "" for r in runs]

    per_epoch = (f"s/epoch projected ({c.steps_per_epoch} steps, no validation)" if c.steps_per_epoch
                 else "s/epoch projected (no validation)")
    rows = [
        row("speed-up vs CPU", lambda r: fmt_interval(r.speedup, r.speedup_interval, ".1f", "x")),
        row("ms/step median", lambda r: ms_or_na(r.step_median_s)),
        row("ms/step p90", lambda r: ms_or_na(r.step_p90_s)),
        row("ms/step mean", lambda r: ms_or_na(r.step_mean_s)),
        row(per_epoch, lambda r: fmt_interval(r.projected_epoch_s, r.projected_epoch_interval_s)),
        row("samples/s", lambda r: fmt(r.samples_per_s, ",.0f")),
        row("utilisation mean", lambda r: fmt(r.util_mean, ".0f", "%")),
        row("memory peak", lambda r: fmt_bytes(r.memory_peak)),
        row("timed", _timed),
        ["source"] + [r.source if r.error is None else f"failed: {r.error}" for r in runs],
    ]
    notes = [_projection_note(c)] + ([brief_view.cost(c).strip()] if c.wall_s is not None else [])
    return Table(title, rows, header, notes + list(c.notes))


def _timed(r: Any) -> str:
    return f"{r.timed_steps} steps in {fmt_s(r.timed_s)}" if r.timed_steps else NA


def _projection_note(c: Any) -> str:
    basis = "steps per epoch x mean step (compiling and warm-up steps left out)"
    if c.fixed_s is not None:
        return (f"Projected epoch = {basis} + {fmt_s(c.fixed_s)} per epoch outside steps, as measured in your fit "
                "(iterator set-up, callbacks); validation not included.")
    return f"Projected epoch = {basis} + the comparison's own time outside steps; validation not included."


def whatif_table(w: Any) -> Table:
    title = f"What if: {w.model} on {w.device}, each change timed from the same start"
    if w.skipped:
        return Table(title, [], notes=[f"Skipped: {w.skipped}."] + w.notes)
    base = w.baseline
    rows = []
    if base is not None:
        rows.append(["as it is", fmt(base.samples_per_s, ",.0f"), "1.0x", "",
                     f"failed: {base.error}" if base.error else _timed(base)])
    for r in w.runs:
        if r.error is not None:
            rows.append([r.variant, "", "", "", f"cannot run: {r.error}"])
        else:
            rows.append([r.variant, fmt(r.samples_per_s, ",.0f"),
                         fmt_interval(r.speedup, r.speedup_interval, ".2f", "x"), r.gain or NA, _timed(r)])
    for key in w.left_out:
        rows.append([key, "", "", "", f"not run, to keep within the budget (--whatif {key} runs it)"])
    header = ["change", "samples/s", "speed-up", "verdict", "timed"]
    notes = [brief_view.cost(w).strip()] if w.wall_s is not None else []
    return Table(title, rows, header, notes + list(w.notes))


def colab_history_note(path: str) -> str:
    return (f"The run history is in {path}, which goes when Colab recycles this runtime: run %mount_drive "
            "first to keep it on Drive (with the history of your other runtimes).")


def plot_saved(n: int, target: object) -> str:
    return f"Timeline of fit {n} saved to {target}"


def plot_needs_notebook() -> str:
    return "--plot shows the timeline in a notebook; in a terminal use --plot-file PATH"
