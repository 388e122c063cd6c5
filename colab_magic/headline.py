"""The answer first: one line per fit (what trained where, how fast, the speed-up over the CPU when it
was measured, and the most important finding with its fix), and the one line that explains a
missing GPU in the user's terms, for the place the kernel runs.

Pure functions of the report parts: the result object carries the lines (``headline``), the views
put them first.
"""

from __future__ import annotations

from typing import Any

from .units import ms_per_step, seconds


def _where(r: Any) -> str:
    gpu = r.device_gpu
    if gpu is not None:
        return gpu.label
    if (r.device or "").startswith("CPU"):
        return "the CPU"
    return r.device or "an unknown device"


def _fastest_gpu(comparison: Any) -> Any:
    if comparison is None:
        return None
    runs = [run for run in comparison.runs if run.is_gpu and run.error is None and run.speedup]
    return max(runs, key=lambda run: run.speedup, default=None)


def fit_headline(r: Any, comparison: Any = None, numbered: bool = False) -> str:
    """One line for fit ``r``; ``comparison``: its --compare result, if any."""
    lead = f"Fit {r.index}: " if numbered else ""
    if r.failed:  # no figures from a step or two: where it stopped, and the user's traceback after
        return f"{lead}{r.model} on {_where(r)} failed {r.failed_at} (the error follows)."
    figures = []
    if r.step is not None:
        figures.append(f"{ms_per_step(r.step.median)} ms/step")
    if r.epoch_mean_s is not None:
        figures.append(f"{seconds(r.epoch_mean_s)} s/epoch")
    if r.mfu is not None:
        figures.append(f"MFU {100 * r.mfu:.1f}%")
    text = f"{lead}{r.model} on {_where(r)}"
    if r.resumed_from_epoch:
        text += f" (resumed from the backup after epoch {r.resumed_from_epoch})"
    text += ": " + (", ".join(figures) if figures else "no step timed")
    if not r.complete:
        text += f" (stopped: {r.error})"
    gpu = _fastest_gpu(comparison)
    if gpu is not None:
        how = f"{gpu.speedup:.1f}x faster" if gpu.speedup >= 1 else f"{1 / gpu.speedup:.1f}x slower"
        text += f"; {gpu.device} {how} than the CPU"
        if gpu.speedup_interval:
            low, high = gpu.speedup_interval
            if gpu.speedup < 1:  # the interval of "N x slower"
                low, high = 1 / high, 1 / low
            text += f" ({low:.1f}-{high:.1f}x)"
        if gpu.source != "measured now":
            text += " (GPU run from the history)"
    if r.findings:
        first = r.findings[0]
        text += f". {first.title}" + (f" (fix: {first.action})" if first.action else "")
    elif r.complete and r.step is not None:
        text += ". No bottleneck found"
    return text + "."


def no_gpu_advice(runtime: str | None, accelerator: str | None = None) -> str:
    """Why there are no GPU figures, and what to do, where the kernel runs."""
    if runtime == "colab":
        if accelerator == "TPU":
            return ("No NVIDIA GPU: this Colab runtime has a TPU, which colab_magic does not measure. "
                    "For a GPU: Runtime > Change runtime type > a GPU, then run the notebook again.")
        return ("No GPU in this Colab runtime: Runtime > Change runtime type > a GPU (T4 is in the free tier), "
                "then run the notebook again.")
    if runtime == "kaggle":
        return ("No GPU in this Kaggle session: Settings > Accelerator > a GPU (needs a phone-verified account), "
                "then run the notebook again.")
    return ("No NVIDIA GPU here (none fitted, or no driver): these are CPU figures. With a GPU, `nvidia-smi` "
            "lists it, and %device_info says whether the framework sees it.")
