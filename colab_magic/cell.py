"""One ``%%timed_fit`` cell: run it with every training loop recorded, then (on request) the input
check, the trials of --compare and --whatif, the timelines, and the run history. Returns the result
and the user's own exception; the magic shows the one and re-raises the other."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import drive, fit_view, history, plot, runtime_left
from .comparison import TrialOptions, compare_fit, devices_to_compare
from .defaults import AUTO_INPUT_CHECK_S, DEFAULT_INTERVAL, INPUT_CHECK
from .environment import Runtime, detect
from .errors import describe
from .input_check import input_wait
from .keras_loop import CapturedFit, KerasLoop, KerasOptions
from .mfu import measure
from .observer import CellObserver, RunningFit
from .recorder import CellFits, FitOptions
from .report import FitReport, TimedFitResult
from .run_summary import Comparison, RunSummary, WhatIf
from .session import Session
from .step_marks import StepMarks
from .torch_loop import TorchLoop
from .verdicts import findings, quote_measured
from .whatif import planned as planned_whatifs
from .whatif import whatif_fit


@dataclass(frozen=True)
class WhatIfRequest:
    variants: list | None = None  # colab_magic.variants.Variant; None: each that applies


@dataclass(frozen=True)
class TimedFitOptions:
    """Everything ``%%timed_fit`` was asked, checked: made once from the parsed arguments."""

    interval: float = DEFAULT_INTERVAL  # seconds between the sampler's readings
    input_check: str = INPUT_CHECK  # one of defaults.INPUT_CHECK_MODES
    history_path: Path | None = None  # where to append the run records (None: don't)
    backup_root: Path | None = None  # Keras' BackupAndRestore for each fit, under this folder
    compare: bool = False
    whatif: WhatIfRequest | None = None
    trials: TrialOptions = field(default_factory=TrialOptions)  # --compare's and --whatif's steps and budget
    plot: bool = False  # a timeline in the result (in a notebook)
    plot_file: Path | None = None  # the timeline saved there (a number added per fit when there are several)
    inline: bool = False  # a notebook front end: figures can be shown inline
    runtime: Runtime | None = None  # where the kernel runs (the advice depends on it)
    replaced_variable: str | None = None  # -v NAME replaces a variable of the user's: said in the notes
    details: bool = False  # -d: the text shows every table, not the short answer
    session: Session = field(default_factory=Session)

    @property
    def trials_asked(self) -> bool:
        return self.compare or self.whatif is not None


def time_cell(execute: Callable[[], Any], options: TimedFitOptions | None = None,
              observer: CellObserver | None = None) -> tuple[TimedFitResult, Any, BaseException | None]:
    """Run ``execute()`` with every Keras fit recorded, then everything ``options`` asks for.
    ``observer``: the front end, told of each fit as it starts (--live), of lines to show while the
    cell runs (a fit that will outlast its Colab runtime; also kept in the notes), and asked for the
    trials' progress bar.

    Returns ``(result, value, error)``: the :class:`TimedFitResult`, what ``execute`` returned, and
    the exception that stopped it (the caller shows the result, then re-raises).
    """
    __tracebackhide__ = True
    options = options or TimedFitOptions()
    watch = _RuntimeWatch(options.runtime, observer or CellObserver())
    fits = CellFits(FitOptions(options.interval), watch)
    loop = KerasLoop(fits, KerasOptions(capture=options.trials_asked, backup_root=options.backup_root))
    start = time.perf_counter()
    value = error = None
    try:
        with fits, loop, TorchLoop(fits), StepMarks(fits):
            value = execute()
    except BaseException as exc:  # noqa: BLE001 - Ctrl-C included: summarise what ran, then re-raise
        error = exc
    watch.cell_ended()
    work = _Assembly(fits.reports, loop.collect())
    work.notes += fits.errors + watch.warned
    _after_cell(work, options, error, watch)
    result = TimedFitResult(
        reports=work.reports,
        cell_s=time.perf_counter() - start,
        complete=error is None,
        error=None if error is None else describe(error),
        notes=work.notes,
        comparisons=work.comparisons,
        whatifs=work.whatifs,
        history_path=work.history_path,
        runtime=options.runtime.kind if options.runtime is not None else None,
        accelerator=options.runtime.accelerator if options.runtime is not None else None,
        said=work.said,
        problems=work.problems,
        detailed=options.details,
    )
    return dataclasses.replace(result, told=_told(result, options.session)), value, error


def _told(result: TimedFitResult, session: Session) -> frozenset:
    """What an earlier cell of this session said already: why there is no GPU, where the history is."""
    told = set()
    if result.no_gpu and not session.once("no gpu"):
        told.add("no gpu")
    if result.history_path and not session.once(f"history {result.history_path}"):
        told.add("history")
    return frozenset(told)


@dataclass
class _Assembly:
    """A cell's result while it is put together: each step adds its part, and the reports (frozen)
    are replaced by fuller ones; the TimedFitResult is made from it once, at the end."""

    reports: list[FitReport]
    captured: list[CapturedFit]
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    whatifs: list[WhatIf] = field(default_factory=list)
    history_path: str | None = None
    said: list[str] = field(default_factory=list)  # lines for the user after the result
    problems: list[str] = field(default_factory=list)  # lines on stderr: the display's own failures

    def update(self, report: FitReport, **fields: Any) -> FitReport:
        """``report`` with ``fields`` changed, in its place here and in its fit's capture."""
        new = dataclasses.replace(report, **fields)
        self.reports = [new if r is report else r for r in self.reports]
        for cap in self.captured:
            if cap.report is report:
                cap.report = new
        return new


def _after_cell(work: _Assembly, options: TimedFitOptions, error: BaseException | None,
                observer: CellObserver) -> None:
    """What runs once the user's cell is done: each step turns its own failure into a note."""
    if error is not None and _keras3_multiworker_failure(error):
        work.notes.append(MULTIWORKER_NOTE)
    _measure_compute(work)
    if error is None and options.input_check != "off":
        _check_inputs(work, options.input_check == "on", options.interval)
    for report in work.reports:  # again, now with the FLOPs and the input check in the report
        work.update(report, findings=findings(report))
    if options.trials_asked and any(r.loop != "keras" for r in work.reports):
        work.notes.append(OWN_LOOP_TRIALS)
    if options.trials_asked and work.captured:
        _run_trials(work, options, error, observer)
    if options.history_path is not None and work.reports:
        _record(work, options.history_path, options.runtime)
    _session_notes(work, options)
    if work.reports and (options.plot or options.plot_file):
        _timelines(work, options)


OWN_LOOP_TRIALS = ("--compare and --whatif train the model again, which a PyTorch loop (or a marked one) does in "
                   "your own code: they ran for Keras fits only. To compare devices, run the cell on each "
                   "(%fit_history --compare sets the runs side by side).")


def _run_trials(work: _Assembly, options: TimedFitOptions, error: BaseException | None,
                observer: CellObserver) -> None:
    flags = " and ".join(f for f, on in (("--compare", options.compare), ("--whatif", options.whatif is not None))
                         if on)
    if error is not None:
        work.notes.append(f"The cell stopped, so {flags} did not run.")
        return
    try:
        _trials(work, options, observer)
    except KeyboardInterrupt:  # the user's cell is done: show it, and what the trials finished
        work.notes.append(f"Ctrl-C stopped {flags}; the trials that had finished are shown.")
    except Exception as exc:  # noqa: BLE001 - a failed comparison must not fail the user's cell
        work.notes.append(f"{flags} failed: {describe(exc)}")


def _session_notes(work: _Assembly, options: TimedFitOptions) -> None:
    colab = options.runtime is not None and options.runtime.kind == "colab"
    if work.history_path and colab and drive.current() is None and options.session.once("colab history"):
        work.notes.append(fit_view.colab_history_note(work.history_path))
    if options.replaced_variable:
        work.notes.append(f"-v {options.replaced_variable}: replaced the variable that had that name.")


def _timelines(work: _Assembly, options: TimedFitOptions) -> None:
    """Each fit's timeline: into its report (shown after its verdicts) in a notebook, into the file
    asked for; what to tell the user goes into ``work.said``. A plot never fails the cell."""
    try:
        for n, report in enumerate(list(work.reports), 1):
            fig = report.plot()
            if options.plot_file is not None:
                _save(fig, options.plot_file, n, len(work.reports), work)
            if options.plot and options.inline:
                work.update(report, timeline_png=plot.png(fig))
            elif options.plot and fit_view.plot_needs_notebook() not in work.said:
                work.said.append(fit_view.plot_needs_notebook())
    except Exception as exc:  # noqa: BLE001 - a plot must never replace the user's exception
        work.problems.append(f"colab_magic could not draw the timeline: {type(exc).__name__}")


def _save(fig: Any, path: Path, n: int, count: int, work: _Assembly) -> None:
    target = free_name(path, n) if count > 1 else path
    try:
        fig.savefig(target)
    except (OSError, ValueError) as exc:
        work.problems.append(f"Could not save the timeline to {target}: {exc}")
    else:
        work.said.append(fit_view.plot_saved(n, target))


def free_name(path: Path, n: int) -> Path:
    """Fit ``n``'s file when several fits share one --plot-file: ``out_2.png``, or, where a file of that
    name is there already (one the user did not name), the first free ``out_2-2.png``, ``out_2-3.png``..."""
    target = path.with_name(f"{path.stem}_{n}{path.suffix}")
    extra = 1
    while os.path.lexists(target):
        extra += 1
        target = path.with_name(f"{path.stem}_{n}-{extra}{path.suffix}")
    return target


# Keras 3's fit under tf.distribute.MultiWorkerMirroredStrategy with two or more workers fails before its
# first step (TensorFlow 2.21, Keras 3.15; reproduced with two processes on localhost, tests/test_multiworker.py).
MULTIWORKER_NOTE = (
    "This fit failed the way every Keras 3 fit under tf.distribute.MultiWorkerMirroredStrategy does "
    "(keras-team/keras#20585: 'Attempt to convert a value (PerReplica...) to a Tensor'). Multi-process "
    "training that works with Keras 3: keras.distribution on the JAX backend (keras.distribution.initialize, "
    "then DataParallel); to keep tf.distribute, the tf_keras package (Keras 2).")


def _keras3_multiworker_failure(error: BaseException) -> bool:
    text = str(error) if isinstance(error, ValueError) else ""
    return "PerReplica" in text and "to a Tensor" in text


class _RuntimeWatch(CellObserver):
    """The front end's observer, and in Colab: after each fit's first epoch, whether the fit will
    outlast the runtime (said at once through the front end, and kept for the notes)."""

    def __init__(self, runtime: Runtime | None, front: CellObserver) -> None:
        self.colab = runtime is not None and runtime.is_colab
        self.front = front
        self.warned: list[str] = []

    def fit_began(self, fit: RunningFit) -> None:
        self.front.fit_began(fit)

    def epoch_ended(self, fit: RunningFit) -> None:
        self.front.epoch_ended(fit)
        if not self.colab or fit.warned:
            return
        fit.warned = True
        text = None if fit.backup is not None else runtime_left.warning(runtime_left.fit_left_s(fit.timer),
                                                                        runtime_left.uptime_s())
        if text:
            self.warned.append(text)
            self.front.say(text)

    def stop_requested(self, fit: RunningFit) -> bool:
        return self.front.stop_requested(fit)

    def say(self, text: str) -> None:
        self.front.say(text)

    def progress(self, total: int) -> Any:
        return self.front.progress(total)

    def cell_ended(self) -> None:
        self.front.cell_ended()  # the live view stops before --compare's progress bar draws where its line was


def _measure_compute(work: _Assembly) -> None:
    for cap in work.captured:
        if cap.report is None:
            continue
        try:
            work.update(cap.report, **measure(cap.report, cap.model, cap.arguments))
        except Exception as exc:  # noqa: BLE001 - the count is ours; the user's fit is done
            work.notes.append(f"FLOPs could not be counted: {describe(exc)}")


def _check_inputs(work: _Assembly, forced: bool, interval: float) -> None:
    for cap in work.captured:
        rep = cap.report
        if rep is None or not hasattr(cap.arguments.get("x"), "element_spec"):
            continue
        if not forced and (rep.wall_s or 0) < AUTO_INPUT_CHECK_S:
            continue
        try:
            work.update(rep, input_wait=input_wait(cap, rep, interval))
        except Exception as exc:  # noqa: BLE001 - the check is ours; the user's cell succeeded
            work.notes.append(f"The input check failed: {describe(exc)}")


def _trials(work: _Assembly, options: TimedFitOptions, observer: CellObserver) -> None:
    names: list[str] = []
    compare = options.compare
    if compare:
        try:
            names = devices_to_compare(options.trials.devices)
        except ValueError as exc:
            work.notes.append(f"--compare skipped: {exc}")
            compare = False
    firsts, seen = [], set()
    for cap in work.captured:  # a model fitted twice is compared once, from its first start
        if id(cap.model) not in seen:
            seen.add(id(cap.model))
            firsts.append(cap)
    whatif = options.whatif
    planned = len(firsts) * (len(names) + (planned_whatifs(whatif.variants) if whatif is not None else 0))
    bar = observer.progress(planned) if planned else None
    try:
        for cap in firsts:
            comparison = None
            if compare:
                comparison = compare_fit(cap, cap.report, names, options.trials, bar)
                if not any(n.startswith(("gpu", "cuda")) for n in names):
                    _no_gpu(comparison, cap.report, options.history_path)
                work.comparisons.append(comparison)
                if comparison.interrupted:
                    raise KeyboardInterrupt  # after keeping what finished (noted by _run_trials)
            if whatif is not None:
                found = whatif_fit(cap, cap.report, whatif.variants, options.trials,
                                   _as_is(comparison, cap.report), bar)
                work.whatifs.append(found)
                if cap.report is not None:
                    work.update(cap.report, findings=quote_measured(cap.report.findings, found))
                if found.interrupted:
                    raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()


def _as_is(comparison: Comparison | None, user_report: FitReport | None) -> RunSummary | None:
    """--compare's trial of the model as it is on the device it trained on: --whatif's baseline too."""
    if comparison is None or user_report is None:
        return None
    return next((run for run in comparison.runs if run.device == user_report.device and run.error is None
                 and run.report is not None), None)


def _no_gpu(comparison: Comparison, user_report: FitReport | None, history_path: Path | None) -> None:
    """No GPU here: say why, and bring in this model's GPU runs from the history, if any."""
    if history_path is None or user_report is None or not user_report.signature:
        return
    try:
        records, _ = history.read(history_path)
    except history.HistoryError as exc:
        comparison.notes.append(f"The run history could not be read for GPU runs of this model: {exc}")
        return
    runs = [RunSummary.from_record(rec) for rec in records]
    latest = history.latest_per_device(runs, user_report.signature.id, lambda run: run.is_gpu)
    for run in latest:
        # measured there when the epochs match: better than a projection
        run.projected_epoch_s, _ = run.epoch_s(comparison.steps_per_epoch)
        comparison.runs.append(run)
    if latest:
        comparison.notes.append("GPU columns marked 'history' ran earlier, elsewhere: see where and when in each.")
        comparison.add_speedups()


def _record(work: _Assembly, path: Path, runtime: Runtime | None) -> None:
    runtime = runtime or detect()
    try:
        env = history.environment(runtime, [g.name for g in work.reports[0].gpus])
        for rep in work.reports:
            history.append(RunSummary.from_report(rep).to_record(env), path)
        trials = [run for c in work.comparisons for run in c.runs]
        trials += [run for w in work.whatifs for run in [w.baseline, *w.runs] if run is not None]
        recorded = set()  # by identity: --compare's run of the model as it is is also --whatif's baseline
        for run in trials:
            if run.report is not None and id(run) not in recorded:  # timed now, not brought in from the history
                recorded.add(id(run))
                history.append(run.to_record(env), path)
        work.history_path = str(path)
    except (OSError, ValueError, history.HistoryError) as exc:  # a full disk or a lost Drive must not cost the summary
        work.notes.append(f"Could not record this run in {path}: {exc}")
