"""One ``%%timed_fit`` cell: run it with every Keras fit timed, then (on request) the input check and
the comparison on each device, then the run history. Returns the result and the user's own
exception; the magic shows the one and re-raises the other."""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import history, runtime_left
from .comparison import CompareOptions, compare_fit, devices_to_compare
from .environment import detect
from .fit_hook import FitInterceptor
from .input_check import input_wait
from .mfu import measure
from .parts import describe
from .report import TimedFitResult
from .run_summary import RunSummary
from .sampler import DEFAULT_INTERVAL
from .verdicts import findings, quote_measured
from .whatif import planned as planned_whatifs
from .whatif import whatif_fit

AUTO_INPUT_CHECK_S = 20.0  # a fit this long pays about a second for the check: a few % at most


def time_cell(execute, interval: float = DEFAULT_INTERVAL, compare: CompareOptions | None = None, history_path=None,
              runtime=None, progress=None, input_check: str = "auto", live=None, backup_root=None, warn=None,
              whatif: WhatIfRequest | None = None):
    """Run ``execute()`` with every Keras fit timed.

    ``compare``: time each trained model on each device afterwards. ``whatif``: time each trained model
    with the changes asked for (--whatif). ``history_path``: where to append
    the run records (None: don't). ``progress``: ``progress(total)`` returns a bar with
    ``set_description(text)``, ``update(n)`` and ``close()`` for the comparison. ``input_check``: "on", "off", or "auto" (for tf.data inputs of
    fits that ran long enough that the check costs little). ``live``: a view with ``watch(fit)``,
    told of each fit as it starts (--live). ``backup_root``: Keras' BackupAndRestore for each fit, under
    this folder (--backup). ``warn(text)``: shows a line while the cell still runs (a fit that will
    outlast its Colab runtime); the line is also kept in the result's notes.

    Returns ``(result, value, error)``: the :class:`TimedFitResult`, what ``execute`` returned, and
    the exception that stopped it (the caller shows the result, then re-raises).
    """
    __tracebackhide__ = True
    start = time.perf_counter()
    value = error = None
    warned: list[str] = []
    try:
        import keras  # noqa: F401 - patching needs it; a cell that trains with Keras imports it anyway
    except ImportError:
        interceptor = None
    else:
        interceptor = FitInterceptor(interval, capture=compare is not None or whatif is not None,
                                     watch=live.watch if live is not None else None, backup_root=backup_root,
                                     on_epoch=_runtime_watch(runtime, warned, warn))
    try:
        if interceptor is None:
            value = execute()
        else:
            with interceptor:
                value = execute()
    except BaseException as exc:  # KeyboardInterrupt included: summarise what ran, then re-raise
        error = exc
    if live is not None:
        live.stop()  # before --compare's progress bar, which draws where the live line was
    described = None if error is None else describe(error)
    result = TimedFitResult(
        reports=list(interceptor.reports) if interceptor else [],
        cell_s=time.perf_counter() - start,
        complete=error is None,
        error=described,
        runtime=runtime.kind if runtime is not None else None,
        accelerator=runtime.accelerator if runtime is not None else None,
    )
    if interceptor is None:
        result.notes.append("Keras is not installed, so no fit could be timed (pip install keras).")
        return result, value, error
    result.notes.extend(interceptor.errors)
    result.notes.extend(warned)
    if error is not None and _keras3_multiworker_failure(error):
        result.notes.append(MULTIWORKER_NOTE)
    _measure_compute(result, interceptor.captured)
    if error is None and input_check != "off":
        _check_inputs(result, interceptor.captured, input_check == "on", interval)
    for report in result.reports:  # again, now with the FLOPs and the input check in the report
        report.findings = findings(report)
    if (compare is not None or whatif is not None) and interceptor.captured:
        flags = " and ".join(f for f, on in (("--compare", compare), ("--whatif", whatif)) if on is not None)
        if error is not None:
            result.notes.append(f"The cell stopped, so {flags} did not run.")
        else:
            try:
                _trials(result, interceptor.captured, compare, whatif, interval, progress, history_path)
            except KeyboardInterrupt:  # the user's cell is done: show it, and what the trials finished
                result.notes.append(f"Ctrl-C stopped {flags}; the trials that had finished are shown.")
            except Exception as exc:  # noqa: BLE001 - a failed comparison must not fail the user's cell
                result.notes.append(f"{flags} failed: {describe(exc)}")
    if history_path is not None and result.reports:
        _record(result, history_path, runtime)
    return result, value, error


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


def _runtime_watch(runtime, warned: list, warn):
    """In Colab: after each fit's first epoch, say whether the fit will outlast the runtime."""
    if runtime is None or not runtime.is_colab:
        return None

    def on_epoch(fit) -> None:
        if fit.warned:
            return
        fit.warned = True
        text = None if fit.backup is not None else runtime_left.warning(runtime_left.fit_left_s(fit.timer),
                                                                        runtime_left.uptime_s())
        if text:
            warned.append(text)
            if warn is not None:
                warn(text)

    return on_epoch


def _measure_compute(result, captured) -> None:
    for cap in captured:
        if cap.report is None:
            continue
        try:
            measure(cap.report, cap.model, cap.arguments)
        except Exception as exc:  # noqa: BLE001 - the count is ours; the user's fit is done
            result.notes.append(f"FLOPs could not be counted: {describe(exc)}")


def _check_inputs(result, captured, forced: bool, interval: float) -> None:
    for cap in captured:
        rep = cap.report
        if rep is None or not hasattr(cap.arguments.get("x"), "element_spec"):
            continue
        if not forced and (rep.wall_s or 0) < AUTO_INPUT_CHECK_S:
            continue
        try:
            rep.input_wait = input_wait(cap, rep, interval)
        except Exception as exc:  # noqa: BLE001 - the check is ours; the user's cell succeeded
            result.notes.append(f"The input check failed: {describe(exc)}")


@dataclass
class WhatIfRequest:
    variants: list | None  # colab_magic.variants.Variant; None: each that applies
    options: CompareOptions  # the trials' steps and budget


def _trials(result, captured, compare: CompareOptions | None, whatif: WhatIfRequest | None, interval, progress,
            history_path) -> None:
    names = []
    if compare is not None:
        try:
            names = devices_to_compare(compare.devices)
        except ValueError as exc:
            result.notes.append(f"--compare skipped: {exc}")
            compare = None
    firsts, seen = [], set()
    for cap in captured:  # a model fitted twice is compared once, from its first start
        if id(cap.model) not in seen:
            seen.add(id(cap.model))
            firsts.append((cap, cap.report))
    planned = len(firsts) * (len(names) + (planned_whatifs(whatif.variants) if whatif is not None else 0))
    bar = progress(planned) if progress and planned else None
    try:
        for cap, user_report in firsts:
            comparison = None
            if compare is not None:
                comparison = compare_fit(cap, user_report, names, compare, interval, bar)
                if not any(n.startswith(("gpu", "cuda")) for n in names):
                    _no_gpu(comparison, user_report, history_path)
                result.comparisons.append(comparison)
            if whatif is not None:
                found = whatif_fit(cap, user_report, whatif.variants, whatif.options, interval,
                                   _as_is(comparison, user_report), bar)
                result.whatifs.append(found)
                if user_report is not None:
                    quote_measured(user_report, found)
    finally:
        if bar is not None:
            bar.close()


def _as_is(comparison, user_report):
    """--compare's trial of the model as it is on the device it trained on: --whatif's baseline too."""
    if comparison is None or user_report is None:
        return None
    return next((run for run in comparison.runs if run.device == user_report.device and run.error is None
                 and run.report is not None), None)


def _no_gpu(comparison, user_report, history_path) -> None:
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


def _record(result, path, runtime) -> None:
    runtime = runtime or detect()
    try:
        env = history.environment(runtime, [g.name for g in result.reports[0].gpus])
        for rep in result.reports:
            history.append(RunSummary.from_report(rep).to_record(env), path)
        trials = [run for c in result.comparisons for run in c.runs]
        trials += [run for w in result.whatifs for run in [w.baseline, *w.runs] if run is not None]
        recorded = set()  # by identity: --compare's run of the model as it is is also --whatif's baseline
        for run in trials:
            if run.report is not None and id(run) not in recorded:  # timed now, not brought in from the history
                recorded.add(id(run))
                history.append(run.to_record(env), path)
        result.history_path = str(path)
    except (OSError, ValueError, history.HistoryError) as exc:  # a full disk or a lost Drive must not cost the summary
        result.notes.append(f"Could not record this run in {path}: {exc}")
