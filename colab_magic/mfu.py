"""How much of the hardware a fit used: FLOPs per step, FLOP/s achieved, and the model FLOPs
utilisation (MFU) against the GPU's datasheet peak for the precision the model computes in."""

from __future__ import annotations

from . import flops, frameworks, peaks


def measure(report, model, arguments: dict) -> None:
    """Fill in the report's FLOPs fields (after the fit: nothing here runs a step)."""
    dtype = frameworks.compute_dtype(model)
    counted = flops.per_step(model, report.backend, arguments.get("x"), arguments.get("y"), report.batch_size)
    report.compute_dtype = dtype
    report.flops_per_step, report.flops_method, report.flops_note = counted.flops, counted.method, counted.note
    if counted.flops is None or report.step is None or report.step.mean <= 0:
        return
    report.achieved_flops_per_s = counted.flops / report.step.mean
    gpu = report.device_gpu
    if gpu is None:
        report.peak_basis = "no MFU on the CPU (it is measured against a GPU's datasheet peak)"
        return
    choice = peaks.choose(gpu.name, dtype, frameworks.tf32_enabled(report.backend))
    report.peak_flops_per_s, report.peak_basis = choice.flops_per_s, choice.basis
    if choice.flops_per_s:
        report.mfu = report.achieved_flops_per_s / choice.flops_per_s
