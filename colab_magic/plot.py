"""A timeline of one timed fit: GPU activity, GPU memory and CPU use, with the epoch boundaries and
the first (compiling) step marked. matplotlib is optional: asked for only here.

No pyplot: a bare ``Figure`` keeps no global state and needs no GUI backend.
"""

from __future__ import annotations

import importlib.util
import io
from typing import Any

from .units import GiB

INSTALL_HINT = "plots need matplotlib: pip install matplotlib (or colab-magic[plot])"
# Text, axes and grid in a mid grey on a transparent background: readable in a notebook's light theme
# and its dark one alike (a white figure is a white box in a dark theme; black text vanishes in it)
NEUTRAL = "#8c8c8c"


def available() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except ValueError:  # a module set to None in sys.modules
        return False


def figure(report: Any) -> Any:  # a FitReport (report.py imports this module)
    """Panels only for what was measured: GPU activity and GPU memory when there were GPU readings,
    host CPU always. Percent axes run 0-100; memory from 0 to the GPU's total."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    tl = report.timeline or {}
    gpus = [(n, series) for n, series in enumerate(tl.get("gpus", [])) if any(series.values())]
    panels = 3 if gpus else 1
    fig = Figure(figsize=(9, 2.2 * panels + 0.8), layout="constrained")
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    cpu = axes[-1]
    if gpus:
        util, mem = axes[0], axes[1]
        totals = []
        for n, series in gpus:
            label = report.gpus[n].label if n < len(report.gpus) else f"GPU {n}"
            _line(util, series.get("util"), f"{label}: a kernel running")
            _line(util, series.get("sm_activity_pct"), f"{label}: SMs busy (GPM)")
            _line(util, series.get("tensor_activity_pct"), f"{label}: tensor cores busy (GPM)")
            _line(mem, series.get("memory_used"), label, scale=1 / GiB)
            if n < len(report.gpus) and report.gpus[n].memory_total:
                totals.append(report.gpus[n].memory_total / GiB)
        util.set_ylabel("GPU, % of time")
        util.set_ylim(0, 105)
        mem.set_ylabel("GPU memory, GiB")
        if totals:
            mem.set_ylim(0, max(totals) * 1.02)
            mem.axhline(max(totals), color=NEUTRAL, lw=0.8)  # the device's total
        else:
            mem.set_ylim(bottom=0)
    host = tl.get("host", {})
    # Both in % of all cores: the process's share of one core divided by the core count
    cores = max(1, report.host.logical_cores or 1)
    _line(cpu, host.get("cpu_system"), "whole machine")
    _line(cpu, host.get("cpu_process"), "this process", scale=1 / cores)
    cpu.set_ylabel(f"CPU, % of {cores} cores")
    cpu.set_ylim(0, 105)
    cpu.set_xlabel("seconds since the fit began (shaded: first step, compiling; dashed: epoch ends)")
    for ax in axes:
        if report.first_step_s:
            ax.axvspan(0, report.first_step_s, color="tab:orange", alpha=0.15, lw=0)
        for t in tl.get("epoch_ends", []):
            ax.axvline(t, color="grey", ls="--", lw=0.8)
        if ax.get_legend_handles_labels()[0]:
            # outside the plotting area, so that it never covers a line
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                      labelcolor=NEUTRAL)
        _neutral(ax)
    fig.patch.set_alpha(0.0)
    fig.suptitle(f"{report.model} on {report.device or 'an unknown device'}", fontsize="medium", color=NEUTRAL)
    return fig


def _neutral(ax: Any) -> None:
    ax.set_facecolor("none")
    ax.tick_params(colors=NEUTRAL)
    ax.xaxis.label.set_color(NEUTRAL)
    ax.yaxis.label.set_color(NEUTRAL)
    for spine in ax.spines.values():
        spine.set_color(NEUTRAL)


def _line(ax: Any, points: list | None, label: str, scale: float = 1.0) -> None:
    if points:
        ax.plot([p[0] for p in points], [p[1] * scale for p in points], label=label, lw=1.2)


def png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, transparent=True)
    return buf.getvalue()
