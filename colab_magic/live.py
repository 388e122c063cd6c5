"""What a fit is doing right now, in one line: the content of ``%%timed_fit --live``.

Made on the sampler's thread about once a second from the step timer's counters and the sampler's
latest readings. Nothing here shows anything: :mod:`colab_magic.live_view` puts the line in place.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .parts import THROTTLING_REASONS
from .units import duration, fmt_bytes, seconds
from .verdicts import MEMORY_FULL


@dataclass
class GpuNow:
    index: int
    util_pct: float | None
    sm_activity_pct: float | None
    memory_used: float | None
    memory_total: float | None
    power_w: float | None
    temperature_c: float | None
    throttling: list[str] = field(default_factory=list)  # the latest reading's throttle reasons

    @property
    def memory_full(self) -> bool:
        return bool(self.memory_used and self.memory_total and self.memory_used >= MEMORY_FULL * self.memory_total)


@dataclass
class LiveStatus:
    model: str
    epoch: int | None  # 1-based, the epoch under way
    epochs: int | None  # planned
    step: int | None  # steps done in this epoch
    steps: int | None  # per epoch, when known
    steps_per_s: float | None  # steady state: the first, compiling step left out
    left_s: float | None  # the training steps still to run, at that rate
    gpus: list[GpuNow]
    cpu_pct: float | None  # this process, in % of all cores
    warnings: list[str] = field(default_factory=list)

    def parts(self) -> list[str]:
        out = []
        if self.epoch is not None:
            out.append(f"epoch {self.epoch}/{self.epochs}" if self.epochs else f"epoch {self.epoch}")
        if self.step is not None:
            out.append(f"step {self.step}/{self.steps}" if self.steps else f"step {self.step}")
        if self.steps_per_s is not None:
            out.append(f"{seconds(self.steps_per_s)} steps/s")
        if self.left_s is not None:
            out.append(f"{duration(self.left_s)} left")
        for gpu in self.gpus:
            text = f"GPU {gpu.index} " + (f"{gpu.util_pct:.0f}%" if gpu.util_pct is not None else "n/a")
            if gpu.sm_activity_pct is not None:
                text += f" (SM {gpu.sm_activity_pct:.0f}%)"
            if gpu.memory_used is not None:
                text += f", {fmt_bytes(gpu.memory_used)}" + (f"/{fmt_bytes(gpu.memory_total)}" if gpu.memory_total else "")
            if gpu.power_w is not None:
                text += f", {gpu.power_w:.0f} W"
            if gpu.temperature_c is not None:
                text += f", {gpu.temperature_c:.0f} °C"
            out.append(text)
        if self.cpu_pct is not None:
            out.append(f"CPU {self.cpu_pct:.0f}%")
        return out

    def to_text(self, width: int | None = None) -> str:
        text = " · ".join(self.parts() + [f"⚠ {w}" for w in self.warnings])
        if width is not None and len(text) > width:
            text = text[: max(0, width - 1)] + "…"
        return text

    def to_html(self) -> str:
        body = " · ".join(html.escape(p) for p in self.parts())
        warn = "".join(f' <b style="color:#c00">⚠ {html.escape(w)}</b>' for w in self.warnings)
        return f'<div class="colab-magic-live" style="font-family:monospace">{html.escape(self.model)}: {body}{warn}</div>'


class LiveLine:
    """A status line as a displayable object: IPython sends its HTML and text to the front end."""

    def __init__(self, status: LiveStatus | None) -> None:
        self.status = status

    def _repr_html_(self) -> str:
        return self.status.to_html() if self.status else ""

    def __repr__(self) -> str:
        return self.status.to_text() if self.status else ""


def status(timer: Any, sampler: Any, model: str) -> LiveStatus:
    """The fit's state now, from ``timer`` (a StepTimer) and ``sampler`` (a Sampler)."""
    epochs, steps = timer.plan.epochs, timer.plan.steps_per_epoch
    epoch = step = None
    if timer.epochs:
        current = timer.epochs[-1]
        epoch, step = current.epoch + 1, current.steps
    steps_done = timer.steps  # read from a worker thread while Keras adds to it: a step off at most
    count, total = steps_done.count, steps_done.total
    rate = count / total if count and total > 0 else None
    left = None
    if rate and epochs and steps and epoch is not None:
        remaining = (epochs - epoch) * steps + max(0, steps - (step or 0))
        left = remaining / rate
    gpus = [_gpu_now(track) for track in sampler.gpus]
    cpu = sampler.host["cpu_process"].last
    # memory_full: both figures are there
    warnings = [f"GPU {g.index} memory {100 * (g.memory_used or 0) / (g.memory_total or 1):.0f}% full"
                for g in gpus if g.memory_full]
    warnings += [f"GPU {g.index} throttled ({', '.join(g.throttling)})" for g in gpus if g.throttling]
    return LiveStatus(model, epoch, epochs, step, steps, rate, left, gpus,
                      cpu / sampler.logical_cores if cpu is not None else None, warnings)


def _gpu_now(track: Any) -> GpuNow:
    s = track.series
    return GpuNow(
        track.index, s["util"].last, s["sm_activity_pct"].last, s["memory_used"].last, track.memory_total,
        s["power_w"].last, s["temperature_c"].last,
        sorted(r for r in track.last_clock_events if r in THROTTLING_REASONS),
    )
