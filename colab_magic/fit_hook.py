"""While a cell runs, every Keras ``Model.fit`` gets a :class:`~colab_magic.timing.StepTimer` and a
:class:`~colab_magic.sampler.Sampler`; one :class:`~colab_magic.report.FitReport` per fit results.

``fit`` is defined on the backend's trainer class, not on ``keras.Model``, so setting ``keras.Model.fit``
for the cell covers Sequential, Functional and subclassed models (those that override ``fit`` and call
``super().fit`` too). On exit the class is put back exactly as it was. ``tf.keras.Model`` is the same
class from TensorFlow 2.16 on.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading

from . import frameworks
from .report import build_report
from .sampler import DEFAULT_INTERVAL, Sampler


class FitInterceptor:
    def __init__(self, interval: float = DEFAULT_INTERVAL, capture: bool = False):
        self.interval = interval
        # Each fit's model and arguments are kept (references, for the input check); with capture,
        # also the weights before the fit (a copy, for --compare).
        self.capture = capture
        self.reports = []
        self.captured: list[dict] = []
        self.errors: list[str] = []  # failures of our own bookkeeping, never the user's
        self._local = threading.local()

    def __enter__(self):
        import keras

        self._model = keras.Model
        self._own = self._model.__dict__.get("fit")
        original = self._model.fit
        signature = inspect.signature(original)
        interceptor = self

        @functools.wraps(original)
        def fit(model, *args, **kwargs):
            __tracebackhide__ = True
            return interceptor._fit(original, signature, model, args, kwargs)

        self._model.fit = fit
        return self

    def __exit__(self, *exc):
        if self._own is None:
            del self._model.fit
        else:
            self._model.fit = self._own
        return False

    def _fit(self, original, signature, model, args, kwargs):
        __tracebackhide__ = True
        # A fit inside a fit (a custom fit calling fit again) is timed once, by the outer one.
        if getattr(self._local, "busy", False):
            return original(model, *args, **kwargs)
        try:
            bound = signature.bind(model, *args, **kwargs)
        except TypeError:
            return original(model, *args, **kwargs)  # let Keras word the error
        captured = _capture(model, bound.arguments, self.capture)
        self.captured.append(captured)

        def deliver(report, problem):
            captured["report"] = report  # None when the report could not be built
            if report is not None:
                self.reports.append(report)
            if problem:
                self.errors.append(problem)

        self._local.busy = True
        try:
            return timed_call(original, bound, self.interval, len(self.reports) + 1, deliver)
        finally:
            self._local.busy = False


def timed_call(original, bound, interval: float, index: int, deliver, on_step=None, warmup_steps: int = 0):
    """Call ``original`` (an unpatched ``fit``) with ``bound`` arguments, timed and sampled.

    ``deliver(report, problem)`` gets the FitReport, also when fit raises (then marked incomplete),
    or the reason no report could be built. Returns what fit returned; re-raises what it raised.
    """
    __tracebackhide__ = True
    from .timing import StepTimer

    model = bound.arguments["self"]
    sampler = Sampler(interval)
    spe = getattr(model, "steps_per_execution", 1) or 1
    timer = StepTimer(on_epoch_end=sampler.mark, steps_per_execution=spe, on_step=on_step, warmup_steps=warmup_steps)
    callbacks, detach = _attach(bound.arguments.get("callbacks"), timer, model)
    bound.arguments["callbacks"] = callbacks
    error = None
    sampler.start()
    try:
        return original(*bound.args, **bound.kwargs)
    except BaseException as exc:
        error = f"{type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        raise
    finally:
        detach()
        sampler.stop()
        _report(index, model, bound.arguments, timer, sampler, error, deliver)


def _report(index, model, arguments, timer, sampler, error, deliver) -> None:
    # Runs in a finally: it must not raise, or it would hide the user's own exception.
    try:
        timer.close()
        backend = sys.modules["keras"].backend.backend()
        device = frameworks.weight_device(model)
        info = {
            "model": getattr(model, "name", type(model).__name__),
            "backend": backend,
            "device": device,
            "batch_size": batch_size_of(arguments.get("x"), arguments.get("batch_size")),
            "steps_per_execution": getattr(model, "steps_per_execution", 1) or 1,
            "error": error,
            "framework_memory_peak": frameworks.framework_memory_peak(backend, device),
            "signature": model_signature(model, arguments.get("x")),
        }
        deliver(build_report(index, timer, sampler, info), None)
    except Exception as exc:  # noqa: BLE001
        deliver(None, f"could not build the report: {type(exc).__name__}: {exc}")


def model_signature(model, x=None) -> dict:
    """Layer types, parameter count and input shape: what makes two runs "the same model"."""
    layers = [type(layer).__name__ for layer in getattr(model, "layers", [])]
    try:
        params = int(model.count_params())
    except Exception:  # noqa: BLE001 - an unbuilt model has no count yet
        params = None
    shape = None
    if hasattr(x, "shape") and len(x.shape) > 1:
        shape = [None] + [int(d) for d in x.shape[1:]]
    elif getattr(model, "inputs", None):
        shape = [None if d is None else int(d) for d in model.inputs[0].shape]
    return {"layers": layers, "params": params, "input_shape": shape}


def _capture(model, arguments, weights: bool) -> dict:
    """What --compare and the input check need to retrain this model elsewhere (from the same start)."""
    if not weights:
        return {"model": model, "arguments": dict(arguments), "weights": None}
    try:
        weights = model.get_weights() if model.built else None
    except Exception:  # noqa: BLE001 - a model whose weights can't be read is compared from a fresh start
        weights = None
    return {"model": model, "arguments": dict(arguments), "weights": weights}


def _attach(callbacks, timer, model):
    """Add ``timer`` to the user's callbacks (None, a list, or a CallbackList used as is).

    Returns the callbacks to pass to fit and a function that leaves the user's objects as they were.
    """
    if callbacks is None:
        return [timer], lambda: None
    if isinstance(callbacks, (list, tuple)):
        return list(callbacks) + [timer], lambda: None
    # A CallbackList: Keras uses it as given, so ours goes inside it, and out again afterwards.
    # The timer is async_safe, so the list's choice of async dispatch stays right with it inside.
    inner = callbacks.callbacks
    inner.append(timer)
    timer.set_model(model)
    if getattr(callbacks, "params", None):
        timer.set_params(callbacks.params)

    def detach():
        if timer in inner:
            inner.remove(timer)

    return callbacks, detach


def batch_size_of(x, batch_size) -> int | None:
    """Samples per step where Keras' own rules make it knowable; None for generators and the like."""
    if x is None:
        return None
    if hasattr(x, "shape") and not hasattr(x, "element_spec"):  # a NumPy array or a tensor
        n = x.shape[0] if len(x.shape) else None
        size = batch_size or 32
        return min(size, n) if n else size
    if isinstance(x, (list, tuple, dict)):
        first = next(iter(x.values() if isinstance(x, dict) else x), None)
        return batch_size_of(first, batch_size)
    spec = getattr(x, "element_spec", None)  # tf.data.Dataset
    if spec is not None:
        import tensorflow as tf

        for part in tf.nest.flatten(spec):
            shape = getattr(part, "shape", None)
            if shape is not None and shape.rank and shape[0] is not None:
                return int(shape[0])
    return None


def time_cell(execute, interval: float = DEFAULT_INTERVAL, compare: dict | None = None, history_path=None,
              runtime=None, progress=None, input_check: str = "auto"):
    """Run ``execute()`` with every Keras fit timed.

    ``compare``: None, or {"steps": N, "devices": [...] or None} to time each trained model on each
    device afterwards. ``history_path``: where to append the run records (None: don't). ``progress``:
    ``progress(total)`` returns a bar with ``update(n)`` and ``close()`` for the comparison.
    ``input_check``: "on", "off", or "auto" (for tf.data inputs of fits that ran long enough that the
    check costs little): measure how much of each step waited for data (see compare.input_wait).

    Returns ``(result, value, error)``: the :class:`TimedFitResult`, what ``execute`` returned, and
    the exception that stopped it (the caller shows the result, then re-raises).
    """
    __tracebackhide__ = True
    import time

    from .report import TimedFitResult

    start = time.perf_counter()
    value = error = None
    try:
        import keras  # noqa: F401 - patching needs it; a cell that trains with Keras imports it anyway
    except ImportError:
        interceptor = None
    else:
        interceptor = FitInterceptor(interval, capture=compare is not None)
    try:
        if interceptor is None:
            value = execute()
        else:
            with interceptor:
                value = execute()
    except BaseException as exc:  # KeyboardInterrupt included: summarise what ran, then re-raise
        error = exc
    described = None if error is None else f"{type(error).__name__}" + (f": {error}" if str(error) else "")
    result = TimedFitResult(
        reports=interceptor.reports if interceptor else [],
        cell_s=time.perf_counter() - start,
        complete=error is None,
        error=described,
    )
    if interceptor is None:
        result.notes.append("Keras is not installed, so no fit could be timed (pip install keras).")
        return result, value, error
    result.notes.extend(interceptor.errors)
    if error is None and input_check != "off":
        _check_inputs(result, interceptor.captured, input_check == "on", interval)
    if compare is not None and interceptor.captured:
        if error is not None:
            result.notes.append("The cell stopped, so --compare did not run.")
        else:
            try:
                _compare_all(result, interceptor.captured, compare, interval, progress, history_path)
            except Exception as exc:  # noqa: BLE001 - a failed comparison must not fail the user's cell
                result.notes.append(f"--compare failed: {type(exc).__name__}: {exc}")
    if history_path is not None and result.reports:
        _record(result, history_path, runtime)
    return result, value, error


AUTO_INPUT_CHECK_S = 20.0  # a fit this long pays about a second for the check: a few % at most


def _check_inputs(result, captured, forced: bool, interval: float) -> None:
    from . import compare
    from .verdicts import findings

    for cap in captured:
        rep = cap.get("report")
        if rep is None or not hasattr(cap["arguments"].get("x"), "element_spec"):
            continue
        if not forced and (rep.wall_s or 0) < AUTO_INPUT_CHECK_S:
            continue
        try:
            rep.input_wait = compare.input_wait(cap, rep, interval)
        except Exception as exc:  # noqa: BLE001 - the check is ours; the user's cell succeeded
            result.notes.append(f"The input check failed: {type(exc).__name__}: {exc}")
            continue
        rep.findings = [f.to_dict() for f in findings(rep)]


def _compare_all(result, captured, options, interval, progress, history_path) -> None:
    from . import compare

    try:
        names = compare.devices(options.get("devices"))
    except ValueError as exc:
        result.notes.append(f"--compare skipped: {exc}")
        return
    firsts, seen = [], set()
    for cap in captured:  # a model fitted twice is compared once, from its first start
        if id(cap["model"]) not in seen:
            seen.add(id(cap["model"]))
            firsts.append((cap, cap.get("report")))
    steps = options["steps"]
    planned = sum(compare.steps_for(steps, rep) for _, rep in firsts)
    bar = progress(planned * len(names)) if progress else None
    try:
        for cap, user_report in firsts:
            comparison = compare.compare_fit(cap, user_report, names, steps, interval, bar.update if bar else None)
            if not any(n.startswith(("gpu", "cuda")) for n in names):
                _no_gpu(comparison, user_report, history_path)
            result.comparisons.append(comparison)
    finally:
        if bar is not None:
            bar.close()


def _no_gpu(comparison, user_report, history_path) -> None:
    """No GPU here: say why, and bring in this model's GPU runs from the history, if any."""
    from . import compare, history

    backend = user_report.backend if user_report else "Keras"
    why = user_report.gpu_note if user_report and user_report.gpu_note else f"the {backend} backend sees none"
    comparison.notes.append(f"No GPU to compare with: {why}.")
    if history_path is None or user_report is None or not user_report.signature:
        return
    records, _ = history.read(history_path)
    wanted = history.signature_id(user_report.signature)
    latest = history.latest_per_device(records, wanted, lambda rec: str(rec.get("device", "")).startswith("GPU"))
    for rec in latest:
        comparison.runs.append(compare.from_history(rec, comparison.steps_per_epoch))
    if latest:
        comparison.notes.append("GPU columns marked 'history' ran earlier, elsewhere: see where and when in each.")
        compare.add_speedups(comparison)


def _record(result, path, runtime) -> None:
    from . import history
    from .environment import detect

    runtime = runtime or detect()
    try:
        gpus = [g["name"] for g in result.reports[0].gpus]
        env = history.environment(runtime, gpus)
        for rep in result.reports:
            history.append(history.make_record(rep, env, "fit"), path)
        for comparison in result.comparisons:
            for run in comparison.runs:
                if run.report is not None:
                    record = history.make_record(run.report, env, "compare")
                    # the comparison ran a few steps; its epoch is the user's, projected, and its
                    # samples/s is the table's (from the mean step, like the projection)
                    record.update(steps_per_epoch=comparison.steps_per_epoch, projected_epoch_s=run.projected_epoch_s,
                                  samples_per_s=run.samples_per_s)
                    history.append(record, path)
        result.history_path = str(path)
    except OSError as exc:  # a full disk or a lost Drive must not cost the user their summary
        result.notes.append(f"Could not record this run in {path}: {exc}")
