"""Which deep-learning frameworks are loaded, and which devices each one actually sees.

Only frameworks already in ``sys.modules`` are asked: importing TensorFlow or PyTorch costs seconds,
which a diagnostic must not spend behind the user's back. ``%device_info --frameworks`` imports the
installed ones of TensorFlow, Keras and PyTorch to ask them (each lists its devices without taking GPU
memory); ``--frameworks torch`` (a list) imports just those named. JAX is asked only once something has
started it, or when named: starting it takes GPU memory (by default 75% of the GPU's at its first use,
``XLA_PYTHON_CLIENT_PREALLOCATE``), and TensorFlow imports it, unstarted, where both are installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FrameworkInfo:
    name: str
    version: str | None
    devices: list[str] = field(default_factory=list)
    gpu_count: int = 0
    built_with_cuda: bool | None = None  # None: the framework doesn't say
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    asked: bool = True  # False: imported, but asking it for its devices would have cost GPU memory

    def to_dict(self) -> dict:
        return asdict(self)


NAMES = {"tensorflow": "TensorFlow", "keras": "Keras", "torch": "PyTorch", "jax": "JAX"}  # module -> as said
ALIASES = {"tf": "tensorflow", "pytorch": "torch"}
IMPORTED_BY_DEFAULT = ("tensorflow", "keras", "torch")  # --frameworks with no list: these, where installed


def installed(names: Sequence[str] = IMPORTED_BY_DEFAULT) -> list[str]:
    """Those of ``names`` that can be imported here (found on the path; nothing is imported)."""
    found = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is not None:
                found.append(name)
        except (ImportError, ValueError):  # a broken or half-removed install: asking it would fail too
            continue
    return found


def requested(text: str) -> list[str]:
    """The frameworks ``--frameworks`` names: comma-separated (``tf``, ``pytorch`` accepted); empty for
    the installed ones of TensorFlow, Keras and PyTorch. ``ValueError`` names an unknown one."""
    if not text.strip():
        return installed()
    names = []
    for word in text.split(","):
        name = ALIASES.get(word.strip().lower(), word.strip().lower())
        if name not in NAMES:
            raise ValueError(f"unknown framework {word.strip()!r} (one of: {', '.join(NAMES)})")
        if name not in names:
            names.append(name)
    return names


def survey(to_import: Sequence[str] = ()) -> list[FrameworkInfo]:
    """The frameworks already imported, and those of ``to_import`` (module names), each with the devices
    it sees; one that cannot be imported is listed with the reason."""
    found = []
    for name, probe in _PROBES.items():
        module = sys.modules.get(name)
        if module is None and name in to_import:
            try:
                module = importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install failing at import
                found.append(FrameworkInfo(name, None, error=f"not importable: {exc}"))
                continue
        if module is None:
            continue
        info = FrameworkInfo(name, getattr(module, "__version__", None))
        if name == "jax" and name not in to_import and not _jax_started():
            # TensorFlow imports JAX for its own use where both are installed (Colab): a TensorFlow or
            # PyTorch user has JAX imported and never started
            info.asked = False
            info.notes.append(JAX_NOT_STARTED)
            found.append(info)
            continue
        try:
            probe(module, info)
        except Exception as exc:  # noqa: BLE001 - a framework that fails to list devices is itself a finding
            info.error = f"could not list devices: {type(exc).__name__}: {exc}"
        found.append(info)
    return found


JAX_NOT_STARTED = ("imported, not started: not asked, since asking starts its GPU backend, which takes GPU "
                   "memory (--frameworks jax asks)")


def _jax_started() -> bool:
    """Whether JAX has started its backends (something ran in JAX): asking it then costs nothing more.
    Read from its private bridge module; where that moved, JAX counts as not started (not asked)."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    try:
        return bool(started()) if callable(started) else bool(getattr(bridge, "_backends", None))
    except Exception:  # noqa: BLE001 - a JAX whose bridge answers otherwise: not asked
        return False


def _tensorflow(tf: Any, info: FrameworkInfo) -> None:
    devices = tf.config.list_physical_devices()
    info.devices = [d.name.replace("/physical_device:", "") for d in devices]
    info.gpu_count = sum(d.device_type == "GPU" for d in devices)
    info.built_with_cuda = bool(tf.test.is_built_with_cuda())
    build = tf.sysconfig.get_build_info()
    if build.get("cuda_version"):
        info.notes.append(f"built for CUDA {build['cuda_version']}, cuDNN {build.get('cudnn_version')}")


def _keras(keras: Any, info: FrameworkInfo) -> None:
    backend = keras.backend.backend()
    info.notes.append(f"backend: {backend}")
    # The backend's own entry (tensorflow/jax/torch) lists devices; listing them here through Keras
    # would import the backend when the user has not.
    if backend in sys.modules:
        info.devices = [str(d) for d in keras.distribution.list_devices()]
        info.gpu_count = sum(d.lower().startswith(("gpu", "cuda")) for d in info.devices)


def _jax(jax: Any, info: FrameworkInfo) -> None:
    devices = jax.devices()
    info.devices = [f"{d.platform}:{d.id} ({d.device_kind})" for d in devices]
    info.gpu_count = sum(d.platform == "gpu" for d in devices)
    info.notes.append(f"default backend: {jax.default_backend()}")


def _torch(torch: Any, info: FrameworkInfo) -> None:
    info.built_with_cuda = torch.version.cuda is not None
    if info.built_with_cuda:
        info.notes.append(f"built for CUDA {torch.version.cuda}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    info.gpu_count = count
    info.devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(count)]


_PROBES = {"tensorflow": _tensorflow, "keras": _keras, "jax": _jax, "torch": _torch}


def weight_device(model: Any) -> str | None:
    """Where the model's first weight lives, as 'CPU:0' / 'GPU:0' (the first device when it is
    replicated). Read after fit, never per step."""
    devices = weight_devices(model)
    return devices[0] if devices else None


def weight_devices(model: Any) -> list[str]:
    """Every device that holds the model's first weight, in order: one per replica under
    keras.distribution.DataParallel (JAX) or tf.distribute.MirroredStrategy, else one."""
    try:
        weights = model.weights
        if not weights:
            return []
        value = weights[0].value
        if callable(getattr(value, "devices", None)):  # a jax.Array: every device with a shard or a copy
            # (its .device is then the sharding, not a device)
            devices = list(value.devices())
        elif isinstance(getattr(value, "values", None), tuple):  # a tf.distribute MirroredVariable
            devices = [v.device for v in value.values]
        else:
            device = getattr(value, "device", None)
            devices = [device() if callable(device) else device]
    except Exception:  # noqa: BLE001 - an unbuilt or exotic model: the devices stay unknown
        return []
    return sorted({normalise_device(str(d)) for d in devices if d is not None}, key=_device_order)


def _device_order(name: str) -> tuple[str, int]:
    kind, _, index = name.partition(":")
    return kind, int(index) if index.isdigit() else 0


def normalise_device(text: str) -> str:
    """A framework's device name as 'CPU:0' / 'GPU:0' / 'TPU:0'."""
    # '/job:localhost/replica:0/task:0/device:GPU:0' (TF), 'cuda:0' / 'cpu' (torch), 'cuda:0' / 'TFRT_CPU_0' (JAX)
    tail = text.rsplit("device:", 1)[-1].lower()
    for prefix, label in (("gpu", "GPU"), ("cuda", "GPU"), ("tpu", "TPU"), ("tfrt_cpu", "CPU"), ("cpu", "CPU")):
        if tail.startswith(prefix):
            digits = "".join(ch for ch in tail[len(prefix):] if ch.isdigit())
            return f"{label}:{digits or 0}"
    return text


def framework_memory_peak(backend: str, device: str | None) -> int | None:
    """The framework's own peak memory on ``device`` (a GPU): what the model needed, unlike NVML's
    "used", which includes what TensorFlow reserves up front."""
    if not device or not device.startswith("GPU"):
        return None
    try:
        if backend == "tensorflow" and "tensorflow" in sys.modules:
            return int(sys.modules["tensorflow"].config.experimental.get_memory_info(device)["peak"])
        if backend == "jax" and "jax" in sys.modules:
            jax = sys.modules["jax"]
            stats = jax.devices("gpu")[int(device.split(":")[1])].memory_stats() or {}
            return stats.get("peak_bytes_in_use")
        if backend == "torch" and "torch" in sys.modules:
            return int(sys.modules["torch"].cuda.max_memory_allocated(int(device.split(":")[1])))
    except Exception:  # noqa: BLE001 - the framework doesn't offer it here: not a failure of the run
        return None
    return None


def torch_memory_reserved(device: str | None) -> int | None:
    """The most PyTorch's caching allocator reserved on ``device`` (a GPU): what NVML sees it hold,
    against max_memory_allocated, what its tensors used."""
    if not device or not device.startswith("GPU") or "torch" not in sys.modules:
        return None
    try:
        return int(sys.modules["torch"].cuda.max_memory_reserved(int(device.split(":")[1])))
    except Exception:  # noqa: BLE001 - no CUDA here, or the allocator does not say: not a failure of the run
        return None


def tf32_enabled(backend: str) -> bool:
    """Whether float32 matrix products may run as TF32 on tensor cores (Ampere and newer) under this
    backend's settings: TensorFlow and JAX do by default (JAX's was seen on an H100: float32 Dense
    layers at 3.8x the FP32 peak, bench/results/gpm_probe_h100_run1.txt); PyTorch does not for
    matrix products unless torch.backends.cuda.matmul.allow_tf32 is set."""
    try:
        if backend == "tensorflow" and "tensorflow" in sys.modules:
            return bool(sys.modules["tensorflow"].config.experimental.is_tensor_float_32_execution_enabled())
        if backend == "jax" and "jax" in sys.modules:
            precision = sys.modules["jax"].config.jax_default_matmul_precision
            return precision in (None, "default", "fastest", "bfloat16", "tensorfloat32", "bfloat16_3x")
        if backend == "torch" and "torch" in sys.modules:
            torch = sys.modules["torch"]  # set_float32_matmul_precision("high" or "medium") allows it too
            return bool(torch.backends.cuda.matmul.allow_tf32) or torch.get_float32_matmul_precision() != "highest"
    except Exception:  # noqa: BLE001 - a framework that does not say: assume the strict default
        return False
    return False


def compute_dtype(model: Any) -> str:
    """The dtype a Keras model computes in: "float32", "float16" (mixed_float16) or "bfloat16"."""
    policy = getattr(model, "dtype_policy", None)
    return str(getattr(policy, "compute_dtype", None) or "float32")
