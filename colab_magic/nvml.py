"""The one module that talks to NVML (package ``nvidia-ml-py``, module ``pynvml``).

Every call goes through :func:`_call`, which turns an ``NVMLError`` into a default value: a metric a
GPU does not support reads as ``None`` instead of raising. Whether NVML works at all is answered once
by :func:`start` (with :func:`reason` saying why not), never by a crash per metric.

NVML is reference counted: :func:`start` / :func:`stop` may nest (``%device_info`` inside a timed
cell, say) and the library is shut down when the last user stops.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from .parts import THROTTLING_REASONS  # noqa: F401 - part of this module's interface

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
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            _reason = _init_failure(pynvml, exc)
            return False
        except OSError as exc:  # a broken libnvidia-ml.so can fail in ctypes before NVML answers
            _reason = f"NVML could not be loaded ({exc})"
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
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def stop_all() -> None:
    """Shut NVML down whatever the count (extension unload)."""
    global _users
    with _lock:
        if _users:
            _users = 1
            stop()


@contextmanager
def session():
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


def _init_failure(pynvml, exc) -> str:
    code = getattr(exc, "value", None)
    if code in (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, pynvml.NVML_ERROR_DRIVER_NOT_LOADED):
        return "no NVIDIA driver found (the NVML library did not load)"
    return f"NVML failed to initialise: {exc}"


def _call(name: str, *args, default=None):
    pynvml = _pynvml
    if pynvml is None:
        return default
    fn = getattr(pynvml, name, None)
    if fn is None:  # an older nvidia-ml-py without this function
        return default
    try:
        return fn(*args)
    except pynvml.NVMLError:
        return default


def _text(value):
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _handle(index: int):
    handle = _handles.get(index)
    if handle is None:
        handle = _call("nvmlDeviceGetHandleByIndex", index)
        if handle is not None:
            _handles[index] = handle
    return handle


def device_count() -> int:
    return _call("nvmlDeviceGetCount", default=0) or 0


def driver_version() -> str | None:
    return _text(_call("nvmlSystemGetDriverVersion"))


def cuda_driver_version() -> str | None:
    """The highest CUDA version the driver supports, e.g. '12.4' (NVML gives 12040)."""
    value = _call("nvmlSystemGetCudaDriverVersion")
    if not value:
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
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "memory_total": memory.total if memory is not None else None,
        "power_limit_w": limit_mw / 1000 if limit_mw is not None else None,
        "mig_enabled": bool(mig[0]) if mig else None,
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
    out = {
        "memory_used": memory.used,
        "memory_total": memory.total,
        "util_gpu": util.gpu if util is not None else None,
        "util_memory": util.memory if util is not None else None,
        "power_w": power_mw / 1000 if power_mw is not None else None,
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
            temperature_c=_call("nvmlDeviceGetTemperature", handle, 0),  # 0 = NVML_TEMPERATURE_GPU
            sm_clock_mhz=_call("nvmlDeviceGetClockInfo", handle, 1),  # 1 = NVML_CLOCK_SM
            mem_clock_mhz=_call("nvmlDeviceGetClockInfo", handle, 2),  # 2 = NVML_CLOCK_MEM
            clock_events=decode_clock_events(reasons),
        )
    return out


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
        for proc in listed:
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
        return [] if getattr(exc, "value", None) == pynvml.NVML_ERROR_NOT_FOUND else None
    field = _SAMPLE_FIELDS.get(value_type, "uiVal")
    return [(s.timeStamp, float(getattr(s.sampleValue, field))) for s in samples if s.timeStamp > since_us]


# nvmlValueType_t -> the c_nvmlValue_t union member that holds it
_SAMPLE_FIELDS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def energy_mj(index: int) -> int | None:
    """The GPU's energy counter in millijoules since the driver loaded (Volta and newer)."""
    handle = _handle(index)
    return _call("nvmlDeviceGetTotalEnergyConsumption", handle) if handle is not None else None
