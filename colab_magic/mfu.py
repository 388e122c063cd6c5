"""How much of the hardware a fit used: FLOPs per step, FLOP/s achieved, and the model FLOPs
utilisation (MFU) against the GPU's datasheet peak for the precision the model computes in."""

from __future__ import annotations

from typing import Any

from . import flops, frameworks, peaks
from .report import FitReport


def measure(report: FitReport, model: Any, arguments: dict) -> dict[str, Any]:
    """The report's FLOPs fields, by name (after the fit: nothing here runs a step)."""
    dtype = frameworks.compute_dtype(model)
    counted = flops.per_step(model, report.backend, arguments.get("x"), arguments.get("y"), report.batch_size)
    out: dict[str, Any] = {"compute_dtype": dtype, "flops_per_step": counted.flops, "flops_method": counted.method,
                           "flops_note": counted.note}
    if counted.flops is None or report.step is None or report.step.mean <= 0:
        return out
    out["achieved_flops_per_s"] = counted.flops / report.step.mean
    return out | against_peak(report, counted.flops / report.step.mean, dtype, frameworks.tf32_enabled(report.backend))


def against_peak(report: FitReport, achieved: float, dtype: str, tf32: bool) -> dict[str, Any]:
    """The datasheet peak for ``dtype`` on the fit's GPU, and the MFU against it."""
    gpu = report.device_gpu
    if gpu is None:
        return {"peak_basis": "no MFU on the CPU (it is measured against a GPU's datasheet peak)"}
    choice = peaks.choose(gpu.name, dtype, tf32)
    out: dict[str, Any] = {"peak_flops_per_s": choice.flops_per_s, "peak_basis": choice.basis}
    if choice.flops_per_s:
        out["mfu"] = achieved / choice.flops_per_s
    return out
