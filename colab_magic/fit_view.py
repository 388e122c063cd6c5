"""How a :class:`~colab_magic.report.TimedFitResult` reads: per fit, the hardware side by side
(Host (CPU) | GPU 0 | GPU 1 ...), the training timings, and a per-epoch table."""

from __future__ import annotations

from .tables import NA, Table, fmt, fmt_bytes

MAX_EPOCH_ROWS = 20  # a long run shows its first and last epochs


def tables(result) -> list[Table]:
    if not result.reports:
        notes = [f"No Keras fit was seen in this cell (it ran in {fmt_s(result.cell_s)})."] + result.notes
        if not result.complete:
            notes.append(f"The cell stopped: {result.error}.")
        return [Table("%%timed_fit", [], notes=notes)]
    out = []
    for report in result.reports:
        out.extend(_fit_tables(report, len(result.reports)))
    for comparison in result.comparisons:
        out.append(comparison_table(comparison))
    if result.history_path:
        result_notes = result.notes + [f"Recorded in {result.history_path} (%fit_history lists it)."]
    else:
        result_notes = result.notes
    if result_notes:
        out.append(Table("Notes", [], notes=result_notes))
    if not result.complete:
        out.append(Table("Cell", [], notes=[f"The cell stopped: {result.error}. Figures above cover what ran."]))
    return out


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return NA
    if seconds < 1:
        return f"{seconds * 1000:.2f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def _fit_tables(r, count: int) -> list[Table]:
    title = f"Fit {r.index} of {count}: " if count > 1 else "Fit: "
    title += f"{r.model} on {r.device or 'unknown device'} (Keras backend {r.backend})"
    if r.mfu is not None:
        title += f", MFU {100 * r.mfu:.1f}%"
    if not r.complete:
        title += f" - INCOMPLETE ({r.error})"
    out = [_hardware(r, title), _training(r), _per_epoch(r)]
    if r.findings:
        rows = [[f"({n}) {f.title}", f"{f.evidence}. Fix: {f.fix}."] for n, f in enumerate(r.findings, 1)]
        out.append(Table("Verdict", rows))
    return out


def _hardware(r, title: str) -> Table:
    h = r.host
    header = ["", "Host (CPU)"] + [g.label for g in r.gpus]

    def row(label, host, gpu):
        return [label, host] + [gpu(g) for g in r.gpus]

    rows = [
        row(
            "utilisation mean / p95",
            f"{fmt(h.cpu_system_mean, '.0f', '%')} / {fmt(h.cpu_system_p95, '.0f', '%')} of {h.logical_cores} cores",
            lambda g: f"{fmt(g.util_mean, '.0f', '%')} / {fmt(g.util_p95, '.0f', '%')} of the time a kernel ran ({g.util_source})",
        ),
        row(
            "this process",
            f"{fmt(h.cpu_process_mean, '.0f', '%')} of one core (p95 {fmt(h.cpu_process_p95, '.0f', '%')})",
            lambda g: f"{fmt_bytes(g.process_memory_peak)} peak",
        ),
        row(
            "memory peak / total",
            f"{fmt_bytes(h.ram_used_peak)} / {fmt_bytes(h.ram_total)} (process RSS {fmt_bytes(h.rss_peak)})",
            lambda g: f"{fmt_bytes(g.memory_peak)} / {fmt_bytes(g.memory_total)}",
        ),
    ]
    if r.framework_memory_peak is not None and r.gpus:
        rows.append(row("framework peak", "", lambda g: fmt_bytes(r.framework_memory_peak) if g.index == 0 else ""))
    if r.gpus:
        rows += [
            row("SMs busy / occupancy (GPM)", NA, _sm_activity),
            row("tensor cores / DRAM (GPM)", NA, lambda g: "" if g.gpm_note else
                f"{fmt(g.tensor_activity_pct, '.1f', '%')} active / {fmt(g.dram_bw_pct, '.0f', '%')} of bandwidth"),
            row("power mean / limit", NA, lambda g: f"{fmt(g.power_mean_w, '.0f', ' W')} / {fmt(g.power_limit_w, '.0f', ' W')}"),
            row("energy", NA, _energy),
            row("temperature max", NA, lambda g: fmt(g.temperature_max_c, ".0f", " °C")),
            row("SM clock mean", NA, lambda g: fmt(g.sm_clock_mean_mhz, ".0f", " MHz")),
            row("clock events", "", _clock_events),
        ]
    notes = list(r.notes)
    cost = r.sampler.cost_pct_of_core
    notes.append(
        f"Sampled every {r.sampler.interval_s:g} s ({r.sampler.ticks} readings); "
        f"sampler cost {fmt(cost, '.2f', '%')} of one core."
    )
    return Table(title, rows, header, notes)


def _sm_activity(g) -> str:
    if g.gpm_note:
        return f"not read: {g.gpm_note}"
    text = f"{fmt(g.sm_activity_pct, '.0f', '%')} / {fmt(g.sm_occupancy_pct, '.0f', '%')}"
    return text + (f" ({g.gpm_failures} readings failed)" if g.gpm_failures else "")


def _energy(g) -> str:
    if g.energy_j is None:
        return NA
    text = f"{g.energy_j:.0f} J"
    return text + (" (estimated from power)" if g.energy_source == "estimated from power" else "")


def _clock_events(g) -> str:
    events = {k: v for k, v in g.clock_events.items() if k != "gpu_idle"}
    if not events:
        return "none"
    text = ", ".join(f"{k} {100 * v:.0f}%" for k, v in events.items())
    return text + (" of readings (throttling)" if g.throttled_fraction > 0 else " of readings")


def _training(r) -> Table:
    s = r.step
    steps = f"{r.total_steps} in {len(r.epochs)} epoch(s)"
    if r.steps_per_epoch:
        steps += f" of {r.steps_per_epoch}"
    steps += f"; batch {r.batch_size or NA}"
    if r.steps_per_execution > 1:
        steps += f", steps_per_execution {r.steps_per_execution} (timed per execution)"
    closed = r.closed_epochs
    rows = [
        ["steps", steps],
        [
            "step time",
            f"median {fmt_s(s.median)}, p10 {fmt_s(s.p10)}, p90 {fmt_s(s.p90)}, mean {fmt_s(s.mean)}"
            if s
            else NA,
        ],
        ["first step", f"{fmt_s(r.first_step_s)} (tracing and compilation; not in the step statistics)"],
    ]
    if closed:
        mean_epoch = sum(e.time_s for e in closed) / len(closed)
        val = sum(e.val_s for e in closed) / len(closed)
        rows.append(["epoch time", f"mean {fmt_s(mean_epoch)}" + (f" (validation {fmt_s(val)})" if val else "")])
    rows.append(["samples/s", fmt(r.samples_per_s, ",.0f")])
    if r.flops_per_step is not None:
        rows.append(["compute", _compute(r)])
    rows.append(["fit wall time", fmt_s(r.wall_s)])
    notes = [f"FLOPs: {r.flops_note}."] if r.flops_note else []
    return Table("Training", rows, notes=notes)


def _compute(r) -> str:
    text = f"{_flops(r.flops_per_step)}/step by {r.flops_method}"
    if r.achieved_flops_per_s is not None:
        text += f"; {_flops(r.achieved_flops_per_s)}/s from the mean step"
    if r.mfu is not None:
        text += f"; MFU {100 * r.mfu:.1f}% of the {r.peak_basis}"
    elif r.peak_basis:
        text += f"; {r.peak_basis}"
    return text


def _flops(n: float) -> str:
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} FLOP"


def _per_epoch(r) -> Table:
    gpu_cols = [f"GPU {g.index} J" for g in r.gpus]
    # "outside steps" shows where an epoch much longer than steps x median step went.
    header = ["epoch", "time", "train", "validation", "outside steps", "steps", "median step"] + gpu_cols
    epochs = r.epochs
    rows = []
    shown = epochs if len(epochs) <= MAX_EPOCH_ROWS else epochs[:10] + [None] + epochs[-9:]
    for e in shown:
        if e is None:
            rows.append(["..."] + [""] * (len(header) - 1))
            continue
        label = str(e.epoch) + ("" if e.complete else " (cut)")
        energy = [fmt(j, ".0f") for j in e.energy_j]
        outside = e.outside_steps_s
        rows.append(
            [label, fmt_s(e.time_s), fmt_s(e.train_s), fmt_s(e.val_s) if e.val_s else "-",
             fmt_s(outside) if outside is not None else NA, str(e.steps), fmt_s(e.step_median_s)]
            + energy
        )
    return Table("Per epoch", rows, header)


def comparison_table(c) -> Table:
    title = f"CPU vs GPU: {c.model}, {c.steps} steps on each device from the same start"
    if c.skipped:
        return Table(title, [], notes=[f"Skipped: {c.skipped}."] + c.notes)
    runs = c.runs
    header = [""] + [r.device + (f" ({r.name})" if r.name and r.name != "CPU" else "") for r in runs]

    def row(label, get):
        return [label] + [get(r) if r.error is None else "" for r in runs]

    per_epoch = f"projected s/epoch ({c.steps_per_epoch} steps)" if c.steps_per_epoch else "projected s/epoch"
    rows = [
        row("ms/step median", lambda r: fmt(r.step_median_s and r.step_median_s * 1000, ".2f")),
        row("ms/step p90", lambda r: fmt(r.step_p90_s and r.step_p90_s * 1000, ".2f")),
        row("ms/step mean", lambda r: fmt(r.step_mean_s and r.step_mean_s * 1000, ".2f")),
        row(per_epoch, lambda r: fmt(r.projected_epoch_s, ".1f", " s")),
        row("samples/s", lambda r: fmt(r.samples_per_s, ",.0f")),
        row("speed-up vs CPU", lambda r: fmt(r.speedup, ".1f", "x")),
        row("utilisation mean", lambda r: fmt(r.util_mean, ".0f", "%")),
        row("memory peak", lambda r: fmt_bytes(r.memory_peak)),
        ["source"] + [r.source if r.error is None else f"failed: {r.error}" for r in runs],
    ]
    return Table(title, rows, header, [_projection_note(c)] + list(c.notes))


def _projection_note(c) -> str:
    basis = "steps per epoch x mean step (compiling and warm-up steps left out)"
    if c.fixed_s is not None:
        return (f"Projected epoch = {basis} + {fmt_s(c.fixed_s)} per epoch outside steps, as measured in your fit "
                "(iterator set-up, callbacks); validation not included.")
    return f"Projected epoch = {basis} + the comparison's own time outside steps; validation not included."


def plot_saved(n: int, target) -> str:
    return f"Timeline of fit {n} saved to {target}"


def plot_needs_notebook() -> str:
    return "--plot shows the timeline in a notebook; in a terminal use --plot-file PATH"
