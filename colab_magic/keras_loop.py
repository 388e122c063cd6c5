"""Keras' ``fit`` as a loop source: while a cell runs, every ``Model.fit`` is recorded through the
:class:`~colab_magic.observer.FitObserver` seam, one :class:`~colab_magic.report.FitReport` per fit.

``fit`` is defined on the backend's trainer class, not on ``keras.Model``, so setting ``keras.Model.fit``
for the cell covers Sequential, Functional and subclassed models (those that override ``fit`` and call
``super().fit`` too). On exit the class is put back exactly as it was. ``tf.keras.Model`` is the same
class from TensorFlow 2.16 on. Keras is not imported here: a cell that has not imported it gets the
patch when it does (``import_watch``). The callback each fit gets is in ``keras_callback``.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import frameworks
from .backup import Backup, backup_for
from .callback_clock import CallbackClock
from .errors import describe
from .import_watch import ImportWatcher, when_imported
from .observer import FitFacts
from .parts import ModelSignature
from .recorder import CellFits, FitRecording
from .report import FitReport

LOOP = "keras"


@dataclass
class CapturedFit:
    """What --compare and the input check need to retrain a fit's model elsewhere, from the same start."""

    model: Any  # the user's model (a reference)
    arguments: dict  # fit's arguments, bound by name
    weights: list | None  # a copy of the weights before the fit (with capture); None otherwise
    index: int = 0  # the fit's number in the cell
    report: FitReport | None = None  # the fit's FitReport, once built


@dataclass(frozen=True)
class KerasCall:
    """One call of an unpatched ``fit``: the function and its arguments, bound by name."""

    fit: Callable[..., Any]
    bound: inspect.BoundArguments

    @property
    def model(self) -> Any:
        return self.bound.arguments["self"]


@dataclass(frozen=True)
class KerasOptions:
    """What the Keras source adds to each fit."""

    capture: bool = False  # keep a copy of the weights before each fit (--compare, --whatif)
    backup_root: Path | None = None  # Keras' BackupAndRestore here, a folder per model (--backup)


class KerasLoop:
    """For a cell: ``keras.Model.fit`` patched so that every fit is recorded in ``fits``."""

    def __init__(self, fits: CellFits, options: KerasOptions | None = None) -> None:
        self.fits = fits
        self.options = options or KerasOptions()
        self.captured: list[CapturedFit] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._patched = False
        self._watcher: ImportWatcher | None = None

    def __enter__(self) -> KerasLoop:
        # Keras not imported yet: patched once the cell imports it (a PyTorch cell never imports it)
        self._watcher = when_imported("keras", self._patch)
        return self

    def _patch(self) -> None:
        import keras

        self._model = keras.Model
        self._own = self._model.__dict__.get("fit")
        original = self._model.fit
        signature = inspect.signature(original)
        loop = self

        @functools.wraps(original)
        def fit(model: Any, *args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            return loop._fit(original, signature, model, args, kwargs)

        self._model.fit = fit
        self._patched = True

    def __exit__(self, *exc: object) -> None:
        if self._watcher is not None:
            self._watcher.remove()
        if not self._patched:
            return
        self._patched = False
        if self._own is None:
            del self._model.fit
        else:
            self._model.fit = self._own

    def collect(self) -> list[CapturedFit]:
        """Each fit's capture with its report, once the cell's fits are closed."""
        for cap in self.captured:
            cap.report = self.fits.delivered_to.get(cap.index)
        return self.captured

    def _fit(self, original: Callable[..., Any], signature: inspect.Signature, model: Any, args: tuple,
             kwargs: dict) -> Any:
        __tracebackhide__ = True
        # A fit inside a fit (a custom fit calling fit again) is timed once, by the outer one.
        if getattr(self._local, "busy", False):
            return original(model, *args, **kwargs)
        try:
            bound = signature.bind(model, *args, **kwargs)
        except TypeError:
            return original(model, *args, **kwargs)  # let Keras word the error
        captured = _capture(model, bound.arguments, self.options.capture)
        with self._lock:
            self.captured.append(captured)
        self._local.busy = True
        try:
            return time_fit_call(KerasCall(original, bound), self.options, self.fits, captured)
        finally:
            self._local.busy = False


def time_fit_call(call: KerasCall, options: KerasOptions, fits: CellFits,
                  captured: CapturedFit | None = None) -> Any:
    """Call an unpatched ``fit``, recorded in ``fits`` (timed and sampled; its report is delivered also
    when fit raises, then marked incomplete). Returns what fit returned; re-raises what it raised.
    ``captured``: numbered with the fit and kept (the trials and the input check retrain from it)."""
    __tracebackhide__ = True
    model, arguments = call.model, call.bound.arguments
    kept = Backup(None)
    if options.backup_root is not None:
        try:
            kept = backup_for(model, arguments, options.backup_root, model_signature(model, arguments.get("x")))
        except Exception as exc:  # noqa: BLE001 - the fit runs, without a backup, and the note says why
            kept = Backup(None, f"--backup could not be set up for this fit: {describe(exc)}")
    backup = kept.callback
    fit = fits.begin(model, lambda: keras_facts(model, arguments, fit, kept.note))
    fit.backup = backup
    if captured is not None:
        captured.index = fit.index
    clock = CallbackClock(lambda: _epoch_now(fit))
    untime = clock.attach(_user_callbacks(arguments.get("callbacks")))
    fit.callback_clock = clock
    from .keras_callback import ObserverCallback  # Keras is imported: a fit is being called

    callbacks, detach = _attach(arguments.get("callbacks"), ObserverCallback(fit, model, clock), model, backup)
    arguments["callbacks"] = callbacks
    error: BaseException | None = None
    try:
        return call.fit(*call.bound.args, **call.bound.kwargs)
    except BaseException as exc:
        error = exc
        raise
    finally:
        detach()
        untime()
        fit.fit_ended(error)
        kept.release()  # the folder's lock: another run of this model may use it now


def keras_facts(model: Any, arguments: dict, fit: FitRecording, backup_note: str | None) -> FitFacts:
    """What Keras knows of a fit's model, read after the fit."""
    import keras

    backend = keras.backend.backend()
    device = frameworks.weight_device(model)
    batch = batch_size_of(arguments.get("x"), arguments.get("batch_size"))
    clock = fit.callback_clock
    return FitFacts(
        callback_seconds=dict(clock.seconds) if clock is not None else {},
        own_hooks_s=clock.own_s if clock is not None else None,
        input_kind=input_kind(arguments.get("x")),
        loop=LOOP,
        model=getattr(model, "name", type(model).__name__),
        backend=backend,
        device=device,
        devices=frameworks.weight_devices(model),
        batch_size=batch,
        batch_note=batch_note_of(arguments.get("x")) if batch is None else None,
        steps_per_execution=getattr(model, "steps_per_execution", 1) or 1,
        framework_memory_peak=frameworks.framework_memory_peak(backend, device),
        signature=model_signature(model, arguments.get("x")),
        resumed_from_epoch=_resumed_from(fit, arguments.get("initial_epoch") or 0),
        backup_dir=str(fit.backup.backup_dir) if fit.backup is not None else None,
        notes=[backup_note] if backup_note else [],
    )


def _user_callbacks(callbacks: Any) -> list:
    """The user's own callbacks in what fit was given (None, a list, or a CallbackList)."""
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else list(getattr(callbacks, "callbacks", []))


def _epoch_now(fit: FitRecording) -> int | None:
    epochs = fit.timer.epochs
    return len(epochs) - 1 if epochs and epochs[-1].end is None else None


def input_kind(x: Any) -> str | None:
    """What fed a fit, in the words the verdicts use: "numpy", "tf.data", "PyDataset", "generator"..."""
    if x is None:
        return None
    if hasattr(x, "element_spec"):
        return "tf.data"
    if isinstance(x, (list, tuple, dict)):
        return input_kind(_first(x))
    if type(x).__module__.startswith("numpy"):
        return "numpy"
    if inspect.isgenerator(x) or hasattr(x, "__next__"):
        return "generator"
    return type(x).__name__


def _resumed_from(fit: FitRecording, initial_epoch: int) -> int | None:
    """Epochs already done when a backup was restored (Keras starts the fit after them)."""
    if fit.backup is None or not fit.timer.epochs:
        return None
    first = fit.timer.epochs[0].epoch
    return first if first > initial_epoch else None


def model_signature(model: Any, x: Any = None) -> ModelSignature:
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


def _capture(model: Any, arguments: dict, weights: bool) -> CapturedFit:
    if not weights:
        return CapturedFit(model, dict(arguments), None)
    try:
        copied = model.get_weights() if model.built else None
    except Exception:  # noqa: BLE001 - a model whose weights can't be read is compared from a fresh start
        copied = None
    return CapturedFit(model, dict(arguments), copied)


def _attach(callbacks: Any, timer: Any, model: Any, backup: Any = None) -> tuple[Any, Callable[[], None]]:
    """Add ``timer`` (our callback: last) and ``backup`` (first: it restores before the user's callbacks start, and
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

    def detach() -> None:
        for ours in first + [timer]:
            if ours in inner:
                inner.remove(ours)

    return callbacks, detach


def _first(x: list | tuple | dict) -> Any:
    """The first input of several (a list, a tuple, or a dict of named inputs)."""
    return next(iter(x.values() if isinstance(x, dict) else x), None)


def batch_size_of(x: Any, batch_size: int | None) -> int | None:
    """Samples per step where Keras' own rules make it knowable; None for generators and the like."""
    if x is None:
        return None
    if hasattr(x, "shape") and not hasattr(x, "element_spec"):  # a NumPy array or a tensor
        n = x.shape[0] if len(x.shape) else None
        size = batch_size or 32
        return min(size, n) if n else size
    if isinstance(x, (list, tuple, dict)):
        return batch_size_of(_first(x), batch_size)
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


def _batch_op_size(dataset: Any) -> int | None:
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


def batch_note_of(x: Any) -> str | None:
    """Why the batch size is unknown, for inputs where it is."""
    if x is None or batch_size_of(x, None) is not None:
        return None
    if hasattr(x, "element_spec"):
        return "unknown: no .batch() found in the dataset"
    return f"unknown: {type(x).__name__} inputs do not say it"
