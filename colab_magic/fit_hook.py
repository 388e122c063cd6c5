"""While a cell runs, every Keras ``Model.fit`` gets a :class:`~colab_magic.timing.StepTimer` and a
:class:`~colab_magic.sampler.Sampler`; one :class:`~colab_magic.report.FitReport` per fit results.

``fit`` is defined on the backend's trainer class, not on ``keras.Model``, so setting ``keras.Model.fit``
for the cell covers Sequential, Functional and subclassed models (those that override ``fit`` and call
``super().fit`` too). On exit the class is put back exactly as it was. ``tf.keras.Model`` is the same
class from TensorFlow 2.16 on.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import cluster, frameworks
from .parts import ModelSignature, describe
from .sampler import DEFAULT_INTERVAL, Sampler
from .summarise import build_report
from .timing import StepTimer


@dataclass
class CapturedFit:
    """What --compare and the input check need to retrain a fit's model elsewhere, from the same start."""

    model: object  # the user's model (a reference)
    arguments: dict  # fit's arguments, bound by name
    weights: list | None  # a copy of the weights before the fit (with capture); None otherwise
    report: object | None = None  # the fit's FitReport, once built


class FitInterceptor:
    def __init__(self, interval: float = DEFAULT_INTERVAL, capture: bool = False, watch=None, backup_root=None,
                 on_epoch=None):
        """``watch(live_fit)``: called as each fit starts (the live view). ``backup_root``: a folder for
        Keras' BackupAndRestore, one subfolder per model. ``on_epoch(live_fit)``: after each epoch."""
        self.interval = interval
        self.watch = watch
        self.backup_root = backup_root
        self.on_epoch = on_epoch
        # Each fit's model and arguments are kept (references, for the input check); with capture,
        # also the weights before the fit (a copy, for --compare).
        self.capture = capture
        self.reports = []
        self.captured: list[CapturedFit] = []
        self.errors: list[str] = []  # failures of our own bookkeeping, never the user's
        self._local = threading.local()
        # Fits are numbered as they start, also in other threads; those still running when the cell
        # ends are reported as such and their samplers stopped (nothing outlives the cell).
        self._lock = threading.Lock()
        self._started = 0
        self._live: list[LiveFit] = []

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
        with self._lock:
            unfinished = [live for live in self._live if not live.done]
        for live in unfinished:
            live.abandon("still running in another thread when the cell ended")
        self.reports.sort(key=lambda report: report.index)
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
        with self._lock:
            self._started += 1
            index = self._started
            self.captured.append(captured)

        def deliver(report, problem):
            with self._lock:
                captured.report = report  # None when the report could not be built
                if report is not None:
                    self.reports.append(report)
                if problem:
                    self.errors.append(problem)

        def started(live):
            with self._lock:
                self._live.append(live)
            if self.watch is not None:
                try:
                    self.watch(live)
                except Exception as exc:  # noqa: BLE001 - the live view is ours: the fit goes on without it
                    with self._lock:
                        self.errors.append(f"--live could not be shown: {describe(exc)}")

        self._local.busy = True
        try:
            return time_fit_call(original, bound, self.interval, index, deliver, on_start=started,
                                 backup_root=self.backup_root, on_epoch=self.on_epoch)
        finally:
            self._local.busy = False


@dataclass
class LiveFit:
    """A fit being timed, so that the cell can report it if it is still running when the cell ends."""

    index: int
    model: object
    arguments: dict
    timer: object
    sampler: object
    deliver: object
    backup: object = None  # the BackupAndRestore colab_magic added (--backup)
    backup_note: str | None = None  # why --backup was not applied to this fit
    warned: bool = False  # the runtime-left warning was given for this fit
    problems: list = field(default_factory=list)  # failures of our own hooks during the fit
    cluster: dict | None = None  # a multi-process run: this process's place in it (colab_magic.cluster)
    done: bool = False
    abandoned: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self) -> bool:
        """The fit ended: True when its report is still wanted."""
        with self.lock:
            self.done = True
            return not self.abandoned

    def abandon(self, reason: str) -> None:
        """Stop its sampler and deliver what was measured so far, marked incomplete; what the fit
        delivers when it does end is then ignored."""
        with self.lock:
            if self.done:
                return
            self.abandoned = True
        self.sampler.stop()
        self.report(reason)

    def report(self, error: str | None) -> None:
        _report(self, error)

    @property
    def resumed_from_epoch(self) -> int | None:
        """Epochs already done when a backup was restored (Keras starts the fit after them)."""
        if self.backup is None or not self.timer.epochs:
            return None
        first = self.timer.epochs[0].epoch
        return first if first > (self.arguments.get("initial_epoch") or 0) else None


def time_fit_call(original, bound, interval: float, index: int, deliver, on_step=None, warmup_steps: int = 0,
                  on_start=None, backup_root=None, on_epoch=None, stop_when=None):
    """Call ``original`` (an unpatched ``fit``) with ``bound`` arguments, timed and sampled.

    ``deliver(report, problem)`` gets the FitReport, also when fit raises (then marked incomplete),
    or the reason no report could be built. Returns what fit returned; re-raises what it raised.
    ``backup_root``: add Keras' BackupAndRestore there (see :func:`backup_for`). ``stop_when(timer)``:
    checked after each timed execution; True ends the fit there (a trial's time-based window).
    """
    __tracebackhide__ = True
    model = bound.arguments["self"]
    sampler = Sampler(interval)
    spe = getattr(model, "steps_per_execution", 1) or 1
    live = None
    step_hook = on_step
    if stop_when is not None:
        def step_hook(steps):
            if on_step is not None:
                on_step(steps)
            if stop_when(timer):
                # the model itself, not the callback's self.model: on JAX that would copy the state
                model.stop_training = True

    def boundary():
        sampler.mark()
        if on_epoch is not None:
            try:
                on_epoch(live)
            except Exception as exc:  # noqa: BLE001 - runs inside the user's fit: it must never stop it
                live.problems.append(f"The epoch-end check failed: {describe(exc)}")

    timer = StepTimer(on_epoch_end=boundary, steps_per_execution=spe, on_step=step_hook, warmup_steps=warmup_steps)
    backup = backup_note = None
    if backup_root is not None:
        try:
            backup, backup_note = backup_for(model, bound.arguments, backup_root)
        except Exception as exc:  # noqa: BLE001 - the fit runs, without a backup, and the note says why
            backup_note = f"--backup could not be set up for this fit: {describe(exc)}"
    callbacks, detach = _attach(bound.arguments.get("callbacks"), timer, model, backup)
    bound.arguments["callbacks"] = callbacks
    error = None
    live = LiveFit(index, model, bound.arguments, timer, sampler, deliver, backup=backup, backup_note=backup_note)
    try:
        live.cluster = cluster.current()
    except Exception as exc:  # noqa: BLE001 - the fit runs; its record just cannot be grouped
        live.problems.append(f"This process's place in the cluster could not be read: {describe(exc)}")
    sampler.start()
    if on_start is not None:
        on_start(live)
    try:
        return original(*bound.args, **bound.kwargs)
    except BaseException as exc:
        error = describe(exc)
        raise
    finally:
        wanted = live.finish()
        detach()
        sampler.stop()
        if wanted:
            live.report(error)


def _report(fit: LiveFit, error) -> None:
    # Runs in a finally: it must not raise, or it would hide the user's own exception.
    index, model, arguments, timer, sampler, deliver = (fit.index, fit.model, fit.arguments, fit.timer, fit.sampler,
                                                        fit.deliver)
    try:
        timer.close()
        backend = sys.modules["keras"].backend.backend()
        device = frameworks.weight_device(model)
        batch = batch_size_of(arguments.get("x"), arguments.get("batch_size"))
        info = {
            "model": getattr(model, "name", type(model).__name__),
            "backend": backend,
            "device": device,
            "devices": frameworks.weight_devices(model),
            "batch_size": batch,
            "batch_note": batch_note_of(arguments.get("x")) if batch is None else None,
            "steps_per_execution": getattr(model, "steps_per_execution", 1) or 1,
            "error": error,
            "framework_memory_peak": frameworks.framework_memory_peak(backend, device),
            "signature": model_signature(model, arguments.get("x")),
            "resumed_from_epoch": fit.resumed_from_epoch,
            "backup_dir": str(fit.backup.backup_dir) if fit.backup is not None else None,
            "backup_note": fit.backup_note,
            "problems": list(fit.problems),
            "cluster": fit.cluster,
        }
        deliver(build_report(index, timer, sampler, info), None)
    except Exception as exc:  # noqa: BLE001
        deliver(None, f"could not build the report: {describe(exc)}")


def model_signature(model, x=None) -> ModelSignature:
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
    return ModelSignature(layers, params, shape)


def backup_key(model, x=None) -> str:
    """The folder name of a model's backup: its signature id, and a hash of its layers' settings
    (units, filters...; names left out, since Keras numbers them anew in each model), so that a
    model of the same layer types and shape never resumes from another one's weights."""
    signature = model_signature(model, x)
    configs = []
    for layer in getattr(model, "layers", []):
        try:
            config = layer.get_config()
        except Exception:  # noqa: BLE001 - a custom layer without get_config: its type stands in
            config = {}
        configs.append({k: v for k, v in config.items() if k != "name"})
    # an object in a config is named by its type: its repr may hold an address that changes each run
    text = json.dumps(configs, sort_keys=True, default=lambda value: type(value).__name__)
    return f"{signature.id}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def backup_for(model, arguments, root):
    """Keras' BackupAndRestore in ``root/<backup_key>``, or (None, why not): the user's own comes first,
    and Keras refuses a model that is not built before fit."""
    import keras

    given = arguments.get("callbacks")
    given = getattr(given, "callbacks", given) or []
    if any(isinstance(c, keras.callbacks.BackupAndRestore) for c in given):
        return None, "--backup: your own BackupAndRestore callback is used instead."
    if not getattr(model, "built", False):
        return None, ("--backup needs a model that is built before fit (start it with keras.Input, or call "
                      "it on a batch first); this fit ran without a backup.")
    folder = Path(root) / backup_key(model, arguments.get("x"))
    return keras.callbacks.BackupAndRestore(str(folder)), None


def _capture(model, arguments, weights: bool) -> CapturedFit:
    if not weights:
        return CapturedFit(model, dict(arguments), None)
    try:
        copied = model.get_weights() if model.built else None
    except Exception:  # noqa: BLE001 - a model whose weights can't be read is compared from a fresh start
        copied = None
    return CapturedFit(model, dict(arguments), copied)


def _attach(callbacks, timer, model, backup=None):
    """Add ``timer`` (last) and ``backup`` (first: it restores before the user's callbacks start, and
    saves an epoch before one of them can stop the fit) to the user's callbacks (None, a list, or a
    CallbackList used as is).

    Returns the callbacks to pass to fit and a function that leaves the user's objects as they were.
    """
    first = [backup] if backup is not None else []
    if callbacks is None:
        return first + [timer], lambda: None
    if isinstance(callbacks, (list, tuple)):
        return first + list(callbacks) + [timer], lambda: None
    # A CallbackList: Keras uses it as given, so ours go inside it, and out again afterwards.
    # The timer is async_safe, so the list's choice of async dispatch stays right with it inside.
    inner = callbacks.callbacks
    inner[:0] = first
    inner.append(timer)
    for ours in first + [timer]:
        ours.set_model(model)
        if getattr(callbacks, "params", None):
            ours.set_params(callbacks.params)

    def detach():
        for ours in first + [timer]:
            if ours in inner:
                inner.remove(ours)

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
        return _batch_op_size(x)
    return None


# Datasets that pass their input's batches on unchanged in size: looking through them for the .batch().
_BATCH_PRESERVING = ("Prefetch", "Map", "ParallelMap", "Cache", "Shuffle", "Repeat", "Take", "Skip", "Filter",
                     "Options", "Assert", "Ignore", "MapAndBatch", "Snapshot")


def _batch_op_size(dataset) -> int | None:
    """``.batch(32)`` without ``drop_remainder`` leaves the batch dimension unknown in the element spec;
    the batch op itself still holds its size (a private attribute: None if that ever changes)."""
    try:
        for _ in range(32):
            size = getattr(dataset, "_batch_size", None)
            if size is not None:
                return int(size)
            name = type(dataset).__name__.strip("_").replace("Dataset", "").replace("V2", "")
            if not name.startswith(_BATCH_PRESERVING):
                return None
            dataset = getattr(dataset, "_input_dataset", None)
            if dataset is None:
                return None
    except Exception:  # noqa: BLE001 - a private attribute that changed: the size is just unknown
        return None
    return None


def batch_note_of(x) -> str | None:
    """Why the batch size is unknown, for inputs where it is."""
    if x is None or batch_size_of(x, None) is not None:
        return None
    if hasattr(x, "element_spec"):
        return "unknown: no .batch() found in the dataset"
    return f"unknown: {type(x).__name__} inputs do not say it"
