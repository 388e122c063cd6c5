"""Inventory of what this kernel can compute on: GPUs (NVML), the host (psutil), the frameworks.

:func:`collect` returns a :class:`DeviceInfo`: plain data with ``to_dict()`` and rich reprs, shaped
like IPython's ``TimeitResult``. Nothing here prints.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from . import device_view, environment, frameworks, nvml
from .environment import Runtime
from .frameworks import FrameworkInfo
from .tables import Rendered, Table


@dataclass
class GpuProcess:
    pid: int
    name: str | None
    gpu_memory: int | None  # bytes; None when the driver won't say
    is_self: bool


@dataclass
class GpuInfo:
    index: int
    name: str | None
    uuid: str | None
    compute_capability: str | None
    memory_used: int | None
    memory_total: int | None
    util_gpu: float | None
    util_memory: float | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    clock_events: list[str] | None
    mig_enabled: bool | None
    processes: list[GpuProcess] | None


@dataclass
class HostInfo:
    cpu_model: str | None
    physical_cores: int | None
    logical_cores: int | None
    cpu_freq_mhz: float | None
    load_avg: tuple[float, float, float] | None
    ram_used: int
    ram_total: int
    swap_used: int
    swap_total: int
    disk_path: str
    disk_free: int | None
    disk_total: int | None
    os: str
    python: str


@dataclass
class DeviceInfo(Rendered):

    runtime: Runtime
    host: HostInfo
    gpus: list[GpuInfo]
    gpu_error: str | None  # why no GPU could be read, in one line
    driver_version: str | None
    cuda_driver_version: str | None
    frameworks: list[FrameworkInfo]
    tpu_attached: bool
    diagnosis: list[str] = field(default_factory=list)
    collected_at: float = field(default_factory=time.time)
    # what --frameworks asks here (those installed of TensorFlow, Keras, PyTorch), as their names are said
    importable: list[str] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return device_view.tables(self)

    def to_dict(self) -> dict:
        return asdict(self)


def collect(shell: Any = None, import_frameworks: Sequence[str] = (), disk_path: str | None = None) -> DeviceInfo:
    runtime = environment.detect(shell)
    with nvml.session() as ok:
        if ok:
            try:
                gpus = [_gpu(i) for i in range(nvml.device_count())]
                driver, cuda = nvml.driver_version(), nvml.cuda_driver_version()
                error = None if gpus else "NVML found no NVIDIA GPU"
            except Exception as exc:  # noqa: BLE001 - a misbehaving nvidia-ml-py: one line, not a traceback
                gpus, driver, cuda = [], None, None
                error = f"NVML answered in a way colab_magic cannot read ({type(exc).__name__})"
        else:
            gpus, driver, cuda, error = [], None, None, nvml.reason()
    found = frameworks.survey(import_frameworks)
    info = DeviceInfo(
        runtime=runtime,
        host=host_info(disk_path or os.getcwd()),
        gpus=gpus,
        gpu_error=error,
        driver_version=driver,
        cuda_driver_version=cuda,
        frameworks=found,
        tpu_attached=environment.tpu_attached(),
        importable=[frameworks.NAMES[name] for name in frameworks.installed()],
    )
    info.diagnosis = diagnose(info)
    return info


def _gpu(index: int) -> GpuInfo:
    static = nvml.static_info(index) or {"index": index}
    now = nvml.reading(index) or {}
    listed = nvml.processes(index)
    procs = None
    if listed is not None:
        me = os.getpid()
        procs = [GpuProcess(pid, _process_name(pid), used, pid == me) for pid, used in listed]
    return GpuInfo(
        index=index,
        name=static.get("name"),
        uuid=static.get("uuid"),
        compute_capability=static.get("compute_capability"),
        memory_used=now.get("memory_used"),
        memory_total=now.get("memory_total", static.get("memory_total")),
        util_gpu=now.get("util_gpu"),
        util_memory=now.get("util_memory"),
        temperature_c=now.get("temperature_c"),
        power_w=now.get("power_w"),
        power_limit_w=static.get("power_limit_w"),
        sm_clock_mhz=now.get("sm_clock_mhz"),
        mem_clock_mhz=now.get("mem_clock_mhz"),
        clock_events=now.get("clock_events"),
        mig_enabled=static.get("mig_enabled"),
        processes=procs,
    )


def _process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):  # gone, or (in a container) a host PID we cannot see
        return None


def host_info(disk_path: str) -> HostInfo:
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    try:
        disk = psutil.disk_usage(disk_path)
        disk_free, disk_total = disk.free, disk.total
    except OSError:
        disk_free = disk_total = None
    freq = _safe(psutil.cpu_freq)
    load = _safe(psutil.getloadavg)
    return HostInfo(
        cpu_model=_cpu_model(),
        physical_cores=psutil.cpu_count(logical=False),
        logical_cores=psutil.cpu_count(logical=True),
        cpu_freq_mhz=freq.current if freq else None,
        load_avg=tuple(round(x, 2) for x in load) if load else None,
        ram_used=vm.total - vm.available,
        ram_total=vm.total,
        swap_used=swap.used,
        swap_total=swap.total,
        disk_path=disk_path,
        disk_free=disk_free,
        disk_total=disk_total,
        os=f"{platform.system()} {platform.release()}",
        python=sys.version.split()[0],
    )


def _safe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (OSError, AttributeError, NotImplementedError, RuntimeError):
        return None


def _cpu_model() -> str | None:
    # psutil has no CPU model; /proc/cpuinfo is the cheap source on Linux (Colab, Kaggle).
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


_TF_GPU_FIX = 'pip install "tensorflow[and-cuda]"'


def diagnose(info: DeviceInfo) -> list[str]:
    """Plain-language lines for what doesn't line up between the hardware and the frameworks."""
    lines = []
    has_gpu = bool(info.gpus)
    for fw in info.frameworks:
        if fw.error or not fw.asked or not has_gpu or fw.gpu_count:
            continue
        if fw.name == "tensorflow":
            cause = (
                "this TensorFlow is a CPU-only build"
                if fw.built_with_cuda is False
                else "TensorFlow could not load the CUDA libraries (missing or wrong version for this driver)"
            )
            lines.append(f"An NVIDIA GPU is present but TensorFlow sees no GPU: {cause}. Fix: {_TF_GPU_FIX}, then restart the kernel.")
        elif fw.name == "torch":
            cause = "this is a CPU-only PyTorch build" if fw.built_with_cuda is False else "CUDA could not initialise"
            lines.append(f"An NVIDIA GPU is present but PyTorch sees no GPU: {cause}. Fix: install a CUDA build (see pytorch.org).")
        elif fw.name == "jax":
            lines.append('An NVIDIA GPU is present but JAX sees no GPU: jaxlib is a CPU-only build. Fix: pip install "jax[cuda12]".')
    if not has_gpu and not info.tpu_attached:
        if info.runtime.is_colab:
            lines.append("No GPU in this Colab runtime. Fix: Runtime > Change runtime type > a GPU, then rerun.")
        else:
            lines.append("No NVIDIA GPU here, so training runs on the CPU.")
    if info.tpu_attached:
        lines.append("A TPU is attached: NVML does not see TPUs; use the framework's TPU devices.")
    return lines
