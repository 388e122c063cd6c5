"""A timeline of one timed fit: GPU utilisation, GPU memory and CPU utilisation, with the epoch
boundaries and the first (compiling) step marked. matplotlib is optional: asked for only here.

No pyplot: a bare ``Figure`` keeps no global state and needs no GUI backend.
"""

from __future__ import annotations

import importlib.util
import io

INSTALL_HINT = "plots need matplotlib: pip install matplotlib (or colab-magic[plot])"


def available() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # a module set to None in sys.modules
        return False


def figure(report):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    util, mem, cpu = fig.subplots(3, 1, sharex=True)
    tl = report.timeline or {}
    for n, series in enumerate(tl.get("gpus", [])):
        label = f"GPU {report.gpus[n].index}" if n < len(report.gpus) else f"GPU {n}"
        _line(util, series.get("util"), f"{label} kernel running")
        _line(util, series.get("sm_activity_pct"), f"{label} SMs busy (GPM)")
        _line(util, series.get("tensor_activity_pct"), f"{label} tensor cores (GPM)")
        _line(mem, series.get("memory_used"), label, scale=1 / 2**30)
    host = tl.get("host", {})
    _line(cpu, host.get("cpu_system"), "system (all cores)")
    _line(cpu, host.get("cpu_process"), "this process (% of one core)")
    util.set_ylabel("GPU %")
    mem.set_ylabel("GPU memory GiB")
    cpu.set_ylabel("CPU %")
    cpu.set_xlabel("seconds since the fit began")
    if not tl.get("gpus"):
        util.text(0.5, 0.5, report.gpu_note or "no GPU", ha="center", va="center", transform=util.transAxes)
        mem.text(0.5, 0.5, "no GPU", ha="center", va="center", transform=mem.transAxes)
    for ax in (util, mem, cpu):
        if report.first_step_s:
            ax.axvspan(0, report.first_step_s, color="tab:orange", alpha=0.15, lw=0)
        for t in tl.get("epoch_ends", []):
            ax.axvline(t, color="grey", ls="--", lw=0.8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize="small")
    title = f"{report.model} on {report.device or '?'}: shaded, the first step (compiling); dashed, epoch ends"
    fig.suptitle(title, fontsize="medium")
    return fig


def _line(ax, points, label, scale=1.0):
    if points:
        ax.plot([p[0] for p in points], [p[1] * scale for p in points], label=label, lw=1.2)


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
