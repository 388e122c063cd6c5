"""The one module that talks to NVML (package ``nvidia-ml-py``, module ``pynvml``).

Every call goes through :func:`_call`, which turns an ``NVMLError`` into a default value: a metric a
GPU does not support reads as ``None`` instead of raising. Whether NVML works at all is answered once
by :func:`start` (with :func:`reason` saying why not), never by a crash per metric.

NVML is reference counted: :func:`start` / :func:`stop` may nest (``%device_info`` inside a timed
cell, say) and the library is shut down when the last user stops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import describe
from .parts import THROTTLING_REASONS  # noqa: F401 - THROTTLING_REASONS: part of this module's interface

_lock = threading.RLock()
_users = 0
_pynvml = None
_handles: dict[int, object] = {}
_reason: str | None = None

# Clock-event ("throttle") reason bits. They are part of NVML's C ABI (nvml.h) and have not changed
# since they were introduced, so the table does not depend on which pynvml names a version exports.
CLOCK_EVENT_REASONS = {
    0x001: "gpu_idle",
    0x002: "applications_clocks",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal",
    0x040: "hw_thermal",
    0x080: "hw_power_brake",
    0x100: "display_clock",
}


def start() -> bool:
    """Initialise NVML, or join the current users. False (see :func:`reason`) when it can't be."""
    global _users, _pynvml, _reason
    with _lock:
        if _users:
            _users += 1
            return True
        try:
            import pynvml
        except ImportError:
            _reason = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return False
        except Exception as exc:  # noqa: BLE001 - a broken install fails in its own way at import
            _reason = f"nvidia-ml-py could not be imported ({describe(exc, first_line=True)})"
            return False
        if not (isinstance(getattr(pynvml, "NVMLError", None), type)
                and issubclass(pynvml.NVMLError, BaseException)):
            _reason = "the pynvml module here is not nvidia-ml-py (it has no NVMLError): pip install nvidia-ml-py"
            return False
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            _reason = _init_failure(pynvml, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - e.g. OSError from ctypes before NVML answers
            _reason = f"NVML could not be loaded ({describe(exc, first_line=True)})"
            return False
        _pynvml, _users, _reason = pynvml, 1, None
        _handles.clear()
        return True


def stop() -> None:
    """Leave NVML; the last user to leave shuts it down."""
    global _users, _pynvml
    with _lock:
        if not _users:
            return
        _users -= 1
        if _users:
            return
        pynvml, _pynvml = _pynvml, None
        _handles.clear()
        try:
            if pynvml is not None:
                pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutting down must never raise (it runs on the sampler's thread)
            pass


def stop_all() -> None:
    """Shut NVML down whatever the count (extension unload)."""
    global _users
    with _lock:
        if _users:
            _users = 1
            stop()


@contextmanager
def session() -> Iterator[bool]:
    """``with nvml.session() as ok:`` start NVML for the block; ``ok`` says whether it works."""
    ok = start()
    try:
        yield ok
    finally:
        if ok:
            stop()


def active() -> bool:
    return _users > 0


def reason() -> str | None:
    """Why NVML is unavailable, from the last failed :func:`start`."""
    return _reason


def _init_failure(pynvml: Any, exc: BaseException) -> str:
    code = getattr(exc, "value", None)
    if code in (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED):
        return "no NVIDIA driver found (the NVML library did not load)"
    return f"NVML failed to initialise: {exc}"


def _call(name: str, *args: Any, default: Any = None) -> Any:
    pynvml = _pynvml
    if pynvml is None:
        return default
    fn = getattr(pynvml, name, None)
    if fn is None:  # an older nvidia-ml-py without this function
        return default
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - NVMLError, or a misbehaving binding (TypeError...): no reading
        return default


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def _handle(index: int) -> Any:
    handle = _handles.get(index)
    if handle is None:
        handle = _call("nvmlDeviceGetHandleByIndex", index)
        if handle is not None:
            _handles[index] = handle
    return handle


def device_count() -> int:
    count = _call("nvmlDeviceGetCount", default=0)
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def driver_version() -> str | None:
    return _text(_call("nvmlSystemGetDriverVersion"))


def cuda_driver_version() -> str | None:
    """The highest CUDA version the driver supports, e.g. '12.4' (NVML gives 12040)."""
    value = _call("nvmlSystemGetCudaDriverVersion")
    if not isinstance(value, int) or not value:
        return None
    return f"{value // 1000}.{value % 1000 // 10}"


def static_info(index: int) -> dict | None:
    """What does not change while the driver runs. None when the GPU cannot be read."""
    handle = _handle(index)
    if handle is None:
        return None
    capability = _call("nvmlDeviceGetCudaComputeCapability", handle)
    memory = _call("nvmlDeviceGetMemoryInfo", handle)
    limit_mw = _call("nvmlDeviceGetEnforcedPowerLimit", handle)
    mig = _call("nvmlDeviceGetMigMode", handle)
    return {
        "index": index,
        "name": _text(_call("nvmlDeviceGetName", handle)),
        "uuid": _text(_call("nvmlDeviceGetUUID", handle)),
        "compute_capability": _capability(capability),
        "memory_total": _number(getattr(memory, "total", None)),
        "power_limit_w": _number(limit_mw, 1000),
        "mig_enabled": bool(mig[0]) if isinstance(mig, (list, tuple)) and mig else None,
    }


def reading(index: int, full: bool = True) -> dict | None:
    """The GPU's current metrics; a metric it doesn't support is None.

    ``full=False`` reads only memory, utilisation and power, the cheap calls a sampler makes every
    tick; temperature, clocks and clock-event reasons are then None. None as a whole when even the
    memory counters cannot be read (GPU lost, driver gone): the sampler records that as a gap.
    """
    handle = _handle(index)
    memory = _call("nvmlDeviceGetMemoryInfo", handle) if handle is not None else None
    if memory is None:
        return None
    util = _call("nvmlDeviceGetUtilizationRates", handle)
    power_mw = _call("nvmlDeviceGetPowerUsage", handle)
    if _number(getattr(memory, "used", None)) is None:
        return None
    out: dict[str, Any] = {
        "memory_used": _number(memory.used),
        "memory_total": _number(getattr(memory, "total", None)),
        "util_gpu": _number(getattr(util, "gpu", None)),
        "util_memory": _number(getattr(util, "memory", None)),
        "power_w": _number(power_mw, 1000),
        "temperature_c": None,
        "sm_clock_mhz": None,
        "mem_clock_mhz": None,
        "clock_events": None,
    }
    if full:
        reasons = _call("nvmlDeviceGetCurrentClocksEventReasons", handle)
        if reasons is None:  # the pre-12.2 name of the same counter
            reasons = _call("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        out.update(
            temperature_c=_number(_call("nvmlDeviceGetTemperature", handle, 0)),  # 0 = NVML_TEMPERATURE_GPU
            sm_clock_mhz=_number(_call("nvmlDeviceGetClockInfo", handle, 1)),  # 1 = NVML_CLOCK_SM
            mem_clock_mhz=_number(_call("nvmlDeviceGetClockInfo", handle, 2)),  # 2 = NVML_CLOCK_MEM
            clock_events=decode_clock_events(reasons if isinstance(reasons, int) else None),
        )
    return out


def _number(value: Any, divide: float = 1) -> float | None:
    """A reading as a number, or None for anything else a misbehaving binding may return."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value / divide if divide != 1 else value


def _capability(value: Any) -> str | None:
    if isinstance(value, (list, tuple)) and len(value) >= 2:
        return f"{value[0]}.{value[1]}"
    return None


def decode_clock_events(mask: int | None) -> list[str] | None:
    if mask is None:
        return None
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]


def processes(index: int) -> list[tuple[int, int | None]] | None:
    """(pid, GPU memory in bytes or None) for every compute and graphics process on the GPU."""
    handle = _handle(index)
    if handle is None:
        return None
    found: dict[int, int | None] = {}
    readable = False
    for fn in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        listed = _call(fn, handle)
        if listed is None:
            continue
        readable = True
        for proc in listed if isinstance(listed, (list, tuple)) else ():
            if not isinstance(getattr(proc, "pid", None), int):
                continue
            used = getattr(proc, "usedGpuMemory", None)
            # NVML reports "not available" (e.g. under WDDM or without permission) as a huge sentinel.
            if used is not None and used >= 2**63:
                used = None
            found[proc.pid] = used if found.get(proc.pid) is None else found[proc.pid]
    return sorted(found.items()) if readable else None


def utilization_samples(index: int, since_us: int) -> list[tuple[int, float]] | None:
    """The driver's own buffered GPU-utilisation samples newer than ``since_us`` (µs timestamps).

    None when the GPU or driver doesn't keep them: the caller then polls the utilisation instead.
    """
    handle = _handle(index)
    pynvml = _pynvml
    if handle is None or pynvml is None or not hasattr(pynvml, "nvmlDeviceGetSamples"):
        return None
    try:
        value_type, samples = pynvml.nvmlDeviceGetSamples(handle, 1, since_us)  # 1 = GPU_UTILIZATION_SAMPLES
    except pynvml.NVMLError as exc:
        # NOT_FOUND means "no sample newer than since_us yet", not "unsupported" (seen on an H200).
        return [] if getattr(exc, "value", None) == getattr(pynvml, "NVML_ERROR_NOT_FOUND", 6) else None
    except Exception:  # noqa: BLE001 - a misbehaving binding: poll instead
        return None
    field = _SAMPLE_FIELDS.get(value_type, "uiVal")
    return [(s.timeStamp, float(getattr(s.sampleValue, field))) for s in samples if s.timeStamp > since_us]


# nvmlValueType_t -> the c_nvmlValue_t union member that holds it
_SAMPLE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def energy_mj(index: int) -> int | None:
    """The GPU's energy counter in millijoules since the driver loaded (Volta and newer)."""
    handle = _handle(index)
    return _call("nvmlDeviceGetTotalEnergyConsumption", handle) if handle is not None else None


# --- GPM (GPU Performance Monitoring, Hopper and newer) -----------------------------------------
# What the SMs and tensor cores actually did, from two samples of the GPU's own counters: no daemon
# and no admin rights (checked on an H100: bench/results/gpm_probe_h100_run1.txt). One reading (a
# sample and the metrics between two) cost about 1 ms there.
GPM_METRICS = {
    "sm_activity_pct": "NVML_GPM_METRIC_SM_UTIL",  # share of SMs busy, averaged over time
    "sm_occupancy_pct": "NVML_GPM_METRIC_SM_OCCUPANCY",  # resident warps of the maximum
    "tensor_activity_pct": "NVML_GPM_METRIC_ANY_TENSOR_UTIL",  # SMs doing any tensor-core work
    "dram_bw_pct": "NVML_GPM_METRIC_DRAM_BW_UTIL",  # memory bandwidth of the maximum
}
_GPM_FUNCTIONS = ("nvmlGpmQueryDeviceSupport", "nvmlGpmSampleAlloc", "nvmlGpmSampleGet", "nvmlGpmMetricsGet",
                  "nvmlGpmSampleFree")


def gpm_unavailable(index: int) -> str | None:
    """Why GPM cannot be read on this GPU, or None when it can."""
    pynvml = _pynvml
    if pynvml is None:
        return reason() or "NVML is not running"
    if not all(hasattr(pynvml, f) for f in _GPM_FUNCTIONS) or not hasattr(pynvml, "c_nvmlGpmMetricsGet_t"):
        return "this nvidia-ml-py has no GPM calls (pip install -U nvidia-ml-py)"
    handle = _handle(index)
    if handle is None:
        return "the GPU did not answer"
    mig = _call("nvmlDeviceGetMigMode", handle)
    if mig and mig[0]:
        return "MIG mode is on (GPM is per MIG instance, not read here)"
    support = _call("nvmlGpmQueryDeviceSupport", handle)
    if support is None or not getattr(support, "isSupportedDevice", 0):
        return "this GPU has no GPM (Hopper or newer, with a recent driver)"
    return None


def gpm_sample(index: int) -> Any:
    """A GPM sample of the GPU's counters now, or None (then nothing is left to free)."""
    pynvml, handle = _pynvml, _handle(index)
    if pynvml is None or handle is None:
        return None
    try:
        sample = pynvml.nvmlGpmSampleAlloc()
    except Exception:  # noqa: BLE001
        return None
    try:
        pynvml.nvmlGpmSampleGet(handle, sample)
    except Exception:  # noqa: BLE001 - a failed reading is a gap
        gpm_free(sample)
        return None
    return sample


def gpm_metrics(first: Any, second: Any) -> dict[str, float | None] | None:
    """GPM_METRICS between two samples (percent), a metric the GPU refuses as None; None when the
    call itself fails."""
    pynvml = _pynvml
    if pynvml is None or first is None or second is None:
        return None
    names = [(key, getattr(pynvml, const, None)) for key, const in GPM_METRICS.items()]
    names = [(key, metric_id) for key, metric_id in names if metric_id is not None]
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(names)
    request.sample1, request.sample2 = first, second
    for i, (_, metric_id) in enumerate(names):
        request.metrics[i].metricId = metric_id
    try:
        pynvml.nvmlGpmMetricsGet(request)
    except Exception:  # noqa: BLE001
        return None
    out: dict[str, float | None] = dict.fromkeys(GPM_METRICS)
    for i, (key, _) in enumerate(names):
        metric = request.metrics[i]
        out[key] = float(metric.value) if metric.nvmlReturn == 0 else None
    return out


def gpm_free(sample: Any) -> None:
    pynvml = _pynvml
    if pynvml is None or sample is None:
        return
    try:
        pynvml.nvmlGpmSampleFree(sample)
    except Exception:  # noqa: BLE001
        pass
