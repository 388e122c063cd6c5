"""From the raw step timer and sampler of one fit to its :class:`~colab_magic.report.FitReport`:
seconds, bytes, watts, joules and percent in typed parts, then the verdicts."""

from __future__ import annotations

import dataclasses

from .mfu import against_peak
from .observer import FitFacts
from .parts import THROTTLING_REASONS, CallbackTime, Epoch, GpuSummary, HostSummary, SamplerFigures
from .report import FitReport
from .sampler import GPM_SERIES, GpuTrack, Sampler
from .stats import Series
from .timing import EpochTiming, StepTimer
from .verdicts import findings


def build_report(index: int, timer: StepTimer, sampler: Sampler, facts: FitFacts, error: str | None = None,
                 cluster: dict | None = None) -> FitReport:
    """The report of fit number ``index``: ``facts`` from its loop source, ``error`` what stopped it
    (None: it finished), ``cluster`` its process's place in a multi-process run."""
    step = timer.steps.step_stats()
    batch = facts.batch_size
    report = FitReport(
        index=index,
        loop=facts.loop,
        model=facts.model,
        backend=facts.backend,
        device=facts.device,
        devices=list(facts.devices),
        cluster=cluster,
        batch_size=batch,
        batch_note=facts.batch_note,
        epochs_planned=timer.plan.epochs,
        steps_per_epoch=timer.plan.steps_per_epoch,
        steps_per_execution=facts.steps_per_execution,
        complete=error is None,
        error=error,
        wall_s=(timer.fit_end or timer.clock()) - timer.fit_start if timer.fit_start is not None else None,
        first_step_s=timer.first_step,
        step=step,
        total_steps=timer.total_steps,
        samples_per_s=(batch / step.median) if batch and step and step.median > 0 else None,
        epochs=_epochs(timer, sampler, facts.callback_seconds),
        host=_host(sampler),
        gpus=[_gpu(sampler, pos, track) for pos, track in enumerate(sampler.gpus)],
        gpu_note=sampler.gpu_note,
        framework_memory_peak=facts.framework_memory_peak,
        sampler=_sampler_figures(sampler),
        timeline=_timeline(sampler, sampler.started or 0.0),
        signature=facts.signature,
        resumed_from_epoch=facts.resumed_from_epoch,
        backup_dir=facts.backup_dir,
        callbacks=_callbacks(facts.callback_seconds, len(timer.epochs)),
        own_hooks_s=facts.own_hooks_s,
        input_kind=facts.input_kind,
        input_wait=facts.input_wait,
        flops_per_step=facts.flops_per_step,
        flops_method=facts.flops_method,
        achieved_flops_per_s=(facts.flops_per_step / step.mean if facts.flops_per_step and step and step.mean > 0
                              else None),
        # in order only until the reservoir starts sampling
        step_times=timer.steps.values[:] if timer.steps.count == len(timer.steps.values) else None,
    )
    report = dataclasses.replace(report, notes=_notes(report, sampler) + list(facts.notes),
                                 compute_dtype=facts.compute_dtype,
                                 framework_memory_reserved=facts.framework_memory_reserved,
                                 skipped_steps=facts.skipped_steps, tf32=facts.tf32, epochs_seen=facts.epochs_seen)
    if report.achieved_flops_per_s and facts.compute_dtype:  # a source that counted its own FLOPs (torch)
        report = dataclasses.replace(report, **against_peak(report, report.achieved_flops_per_s, facts.compute_dtype,
                                                            bool(facts.tf32)))
    return dataclasses.replace(report, findings=findings(report))


def _before(ep: EpochTiming) -> float | None:
    """An epoch's time before its first step (all of it, when no step began)."""
    if ep.first_step_start is not None:
        return max(0.0, ep.first_step_start - ep.start)
    return max(0.0, ep.end - ep.start - ep.val_s) if ep.end is not None else None


def _callbacks(seconds: dict, epochs: int) -> list[CallbackTime]:
    """The user's callbacks, slowest first."""
    timed = [CallbackTime(name, sum(by_epoch.values()), [by_epoch.get(n, 0.0) for n in range(epochs)],
                          by_epoch.get(-1, 0.0)) for name, by_epoch in seconds.items()]
    return sorted(timed, key=lambda c: -c.total_s)


def _epochs(timer: StepTimer, sampler: Sampler, callback_seconds: dict | None = None) -> list[Epoch]:
    epochs = []
    for n, ep in enumerate(timer.epochs):
        closed = ep.end is not None
        epochs.append(
            Epoch(
                epoch=ep.epoch + 1,
                time_s=(ep.end - ep.start) if ep.end is not None else None,
                train_s=(ep.train_end - ep.start) if ep.train_end is not None else None,
                val_s=ep.val_s,
                steps=ep.steps,
                steps_s=ep.steps_s,
                step_median_s=ep.step_median,
                complete=closed,
                before_steps_s=_before(ep),
                callbacks_s=sum(by_epoch.get(n, 0.0) for by_epoch in (callback_seconds or {}).values()),
                after_steps_s=(max(0.0, ep.end - ep.train_end - ep.val_s)
                               if ep.end is not None and ep.train_end is not None else None),
                # marks[0] is the fit's start and marks[n + 1] this epoch's end
                energy_j=[sampler.energy_j_between(g, n, n + 1) if closed else None for g in range(len(sampler.gpus))],
            )
        )
    return epochs


def _host(sampler: Sampler) -> HostSummary:
    h = sampler.host
    return HostSummary(
        cpu_system_mean=h["cpu_system"].mean,
        cpu_system_p95=h["cpu_system"].quantile(0.95),
        cpu_process_mean=h["cpu_process"].mean,
        cpu_process_p95=h["cpu_process"].quantile(0.95),
        rss_peak=h["rss"].peak,
        own_peak=h["own"].peak,
        ram_used_peak=h["ram_used"].peak,
        ram_total=sampler.ram_total,
        logical_cores=sampler.logical_cores,
    )


def _gpu(sampler: Sampler, pos: int, track: GpuTrack) -> GpuSummary:
    s: dict[str, Series] = track.series
    energy = sampler.energy_j_between(pos)
    energy_source = "counter"
    if energy is None and s["power_w"].count >= 2 and sampler.stopped and sampler.started:
        # GPUs before Volta have no energy counter: mean power times duration is the best estimate.
        energy, energy_source = (s["power_w"].mean or 0.0) * (sampler.stopped - sampler.started), "estimated from power"
    start, end = sampler.started or 0.0, sampler.stopped or 0.0
    gaps = [[(g[0] or start) - start, (g[1] if g[1] is not None else end) - start] for g in track.gaps]
    readings = max(track.full_readings, 1)
    return GpuSummary(
        index=track.index,
        name=track.name,
        util_mean=s["util"].mean,
        util_p95=s["util"].quantile(0.95),
        util_source=track.util_source,
        util_samples=s["util"].count,
        memory_peak=s["memory_used"].peak,
        memory_total=track.memory_total,
        process_memory_peak=s["process_memory"].peak,
        power_mean_w=s["power_w"].mean,
        power_limit_w=track.power_limit_w,
        energy_j=energy,
        energy_source=energy_source if energy is not None else None,
        temperature_max_c=s["temperature_c"].peak,
        sm_clock_mean_mhz=s["sm_clock_mhz"].mean,
        clock_events={reason: n / readings for reason, n in sorted(track.clock_events.items())},
        throttled_fraction=max(
            (n / readings for r, n in track.clock_events.items() if r in THROTTLING_REASONS), default=0.0
        ),
        readings=track.readings,
        gaps=gaps,
        gap_s=sum(b - a for a, b in gaps),
        gpm_note=track.gpm_note,
        gpm_readings=track.gpm_readings,
        gpm_failures=track.gpm_failures,
        **_gpm_figures(track),
    )


def _gpm_figures(track: GpuTrack) -> dict:
    """The whole fit's GPM figures: between its first and last samples where both were read (exact),
    else the mean of the readings taken."""
    if track.gpm_note is not None:
        return {}
    window = track.gpm_window or {}
    return {key: window.get(key) if window.get(key) is not None else track.series[key].mean for key in GPM_SERIES}


def _sampler_figures(sampler: Sampler) -> SamplerFigures:
    duration = (sampler.stopped or 0.0) - (sampler.started or 0.0)
    return SamplerFigures(
        started=sampler.started,
        stopped=sampler.stopped,
        interval_s=sampler.interval,
        ticks=sampler.ticks,
        cpu_s=sampler.cpu_seconds,
        stop_wait_s=sampler.stop_wait_s,
        cost_pct_of_core=100.0 * sampler.cpu_seconds / duration if duration > 0 else None,
        errors=list(sampler.errors),
    )


def _timeline(sampler: Sampler, start: float) -> dict:
    def rel(series: Series) -> list[list[float]]:
        return [[round(t - start, 4), v] for t, v in series.points()]

    return {
        "host": {name: rel(series) for name, series in sampler.host.items()},
        "gpus": [{name: rel(series) for name, series in t.series.items()} for t in sampler.gpus],
        "epoch_ends": [round(t - start, 4) for t, _ in sampler.marks[1:-1]],
    }


def _notes(report: FitReport, sampler: Sampler) -> list[str]:
    notes = []
    # A missing GPU is explained once per cell, in the user's terms (TimedFitResult.no_gpu); NVML's own
    # reason stays in gpu_note.
    for gpu in report.gpus:
        if gpu.readings == 0:
            notes.append(f"GPU {gpu.index} reports no metrics through NVML (every reading was refused).")
        elif gpu.gaps:
            notes.append(
                f"GPU {gpu.index}: no readings for {gpu.gap_s:.1f} s in {len(gpu.gaps)} gap(s) "
                "(NVML stopped answering); training went on."
            )
    if sampler.errors:
        notes.append(f"Sampler errors: {'; '.join(sampler.errors[:3])}")
    if report.total_steps == 0 and report.complete:
        notes.append("No training step ran (epochs or steps_per_epoch was 0, or the data was empty).")
    elif report.step is None and report.complete:
        notes.append("Only one execution ran: no steady-state step time (the first step includes compilation).")
    return notes
