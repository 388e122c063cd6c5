"""How a :class:`~colab_magic.devices.DeviceInfo` reads: GPUs side by side, then host, frameworks,
processes and the diagnosis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .parts import THROTTLING_REASONS
from .tables import Table
from .units import NA, fmt, fmt_bytes, fmt_used


def tables(info: Any) -> list[Table]:
    out = [Table("Runtime", [["where", info.runtime.label]])]
    out.append(_gpu_table(info))
    procs = _process_table(info)
    if procs:
        out.append(procs)
    out.append(_host_table(info.host))
    out.append(_framework_table(info))
    if info.diagnosis:
        out.append(Table("Diagnosis", [[f"({i}) {line}"] for i, line in enumerate(info.diagnosis, 1)]))
    return out


def _gpu_table(info: Any) -> Table:
    if not info.gpus:
        return Table("GPU", [["none", info.gpu_error or "no NVIDIA GPU found"]])
    header = [""] + [f"GPU {g.index}" for g in info.gpus]

    def row(label: str, get: Callable[[Any], str]) -> list[str]:
        return [label] + [get(g) for g in info.gpus]

    rows = [
        row("name", lambda g: g.name or NA),
        row("uuid", lambda g: g.uuid or NA),
        row("compute capability", lambda g: g.compute_capability or NA),
        row("memory used", lambda g: fmt_used(g.memory_used, g.memory_total)),
        row("utilisation", lambda g: f"{fmt(g.util_gpu, '.0f', '%')} gpu, {fmt(g.util_memory, '.0f', '%')} memory"),
        row("temperature", lambda g: fmt(g.temperature_c, ".0f", " °C")),
        row("power", lambda g: f"{fmt(g.power_w, '.0f', ' W')} of {fmt(g.power_limit_w, '.0f', ' W')}"),
        row("clocks", lambda g: f"{fmt(g.sm_clock_mhz, '', ' MHz')} SM, {fmt(g.mem_clock_mhz, '', ' MHz')} memory"),
        row("clock events", _clock_events),
        row("MIG", lambda g: NA if g.mig_enabled is None else ("enabled" if g.mig_enabled else "off")),
    ]
    notes = [f"driver {info.driver_version or NA}, CUDA (driver) {info.cuda_driver_version or NA}"]
    return Table("GPUs (NVML)", rows, header, notes)


def _clock_events(gpu: Any) -> str:
    if gpu.clock_events is None:
        return NA
    if not gpu.clock_events:
        return "none"
    throttling = [e for e in gpu.clock_events if e in THROTTLING_REASONS]
    text = ", ".join(gpu.clock_events)
    return text + (" (throttling)" if throttling else "")


def _process_table(info: Any) -> Table | None:
    rows = []
    for gpu in info.gpus:
        for proc in gpu.processes or []:
            mark = "this kernel" if proc.is_self else ""
            rows.append([f"GPU {gpu.index}", str(proc.pid), proc.name or "unknown", fmt_bytes(proc.gpu_memory), mark])
    if not rows:
        return None
    return Table("GPU processes", rows, ["gpu", "pid", "name", "gpu memory", ""])


def _host_table(host: Any) -> Table:
    cores = f"{fmt(host.physical_cores)} physical / {fmt(host.logical_cores)} logical"
    load = " ".join(f"{x:.2f}" for x in host.load_avg) if host.load_avg else NA
    return Table(
        "Host",
        [
            ["CPU", host.cpu_model or NA],
            ["cores", cores],
            ["frequency", fmt(host.cpu_freq_mhz, ".0f", " MHz")],
            ["load (1, 5, 15 min)", load],
            ["RAM used", fmt_used(host.ram_used, host.ram_total)],
            ["swap used", fmt_used(host.swap_used, host.swap_total) if host.swap_total else "no swap"],
            ["disk free", f"{fmt_bytes(host.disk_free)} of {fmt_bytes(host.disk_total)} ({host.disk_path})"],
            ["OS, Python", f"{host.os}, Python {host.python}"],
        ],
    )


def _framework_table(info: Any) -> Table:
    if not info.frameworks:
        return Table("Frameworks", [], notes=[_none_imported(info.importable)])
    rows = []
    for fw in info.frameworks:
        seen = fw.error or (", ".join(fw.devices) if fw.devices else NA)
        rows.append([fw.name, fw.version or NA, seen, "; ".join(fw.notes)])
    return Table("Frameworks", rows, ["framework", "version", "devices seen", "notes"])


def _none_imported(names: list[str]) -> str:
    """What --frameworks would ask here: the frameworks installed, by name."""
    if not names:
        return "none imported, and none of TensorFlow, Keras or PyTorch is installed"
    said = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    single = "; --frameworks torch, PyTorch alone" if len(names) > 1 and "PyTorch" in names else ""
    return f"none imported yet: --frameworks imports {said} to ask them{single}"
