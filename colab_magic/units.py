"""Every figure a user reads, formatted in one place: times, bytes, FLOPs, rates and intervals.

The views, the verdicts, the headline and the live line call these; none formats a unit by hand.
"""

from __future__ import annotations

from typing import Any

NA = "n/a"
GiB = 2**30


def fmt(value: Any, spec: str = "", unit: str = "") -> str:
    """``value`` formatted with ``spec`` and a unit, or n/a when the metric is missing."""
    if value is None:
        return NA
    return f"{value:{spec}}{unit}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return NA
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return NA  # unreachable; keeps type checkers quiet


def fmt_used(used: float | None, total: float | None) -> str:
    if used is None and total is None:
        return NA
    text = f"{fmt_bytes(used)} / {fmt_bytes(total)}"
    if used is not None and total:
        text += f" ({100 * used / total:.0f}%)"
    return text


def seconds(value: float) -> str:
    """A figure to three significant figures or so (no unit: the column or label names it)."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ms_per_step(seconds_per_step: float) -> str:
    return seconds(seconds_per_step * 1000)


def fmt_interval(value: float | None, interval: tuple[float, float] | None, spec: str = ".1f", unit: str = "", scale: float = 1.0) -> str:
    """A figure with its 95% interval, as "8.3x (7.9-8.8)"; the figure alone when it has none.
    ``scale``: both shown in other units (1000: seconds as ms, 100: a share as a percentage)."""
    if value is None:
        return NA
    if not interval:
        return fmt(scale * value, spec, unit)
    low, high = (scale * v for v in interval)
    # "0.6 (0.5-0.6)" reads as no interval at all: a digit more (up to 3) until the ends differ from the figure
    for _ in range(3):
        shown = [f"{v:{spec}}" for v in (scale * value, low, high)]
        if len(set(shown)) == 3 or high == low or not spec.endswith("f") or not spec[1:-1].isdigit():
            break
        spec = f".{int(spec[1:-1]) + 1}f"
    return f"{scale * value:{spec}}{unit} ({low:{spec}}-{high:{spec}})"


def seconds_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    """Seconds with their interval, to the precision :func:`seconds` gives the figure: "7.31 (5.30-9.40)"."""
    spec = ".2f" if value is None or value < 10 else ".1f" if value < 100 else ".0f"
    return fmt_interval(value, interval, spec)


def fmt_s(seconds_: float | None) -> str:
    """A duration with its unit: ms under a second, else s."""
    if seconds_ is None:
        return NA
    if seconds_ < 1:
        return f"{seconds_ * 1000:.2f} ms" if seconds_ < 0.01 else f"{seconds_ * 1000:.1f} ms"
    return f"{seconds_:.2f} s"


def seconds_column(value: float | None) -> str:
    """Seconds in a column of seconds: the same unit on every row."""
    if value is None:
        return NA
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ms(seconds_: float | None, spec: str = ".1f") -> str:
    """Seconds as milliseconds, with the unit: "12.5 ms"."""
    return fmt(None if seconds_ is None else seconds_ * 1000, spec, " ms")


def ms_figure(seconds_: float | None, spec: str = ".2f") -> str:
    """Seconds as milliseconds, without the unit (the column names it): "12.50"."""
    return fmt(seconds_ and seconds_ * 1000, spec)


def ms_or_na(seconds_per_step: float | None) -> str:
    return NA if seconds_per_step is None else ms_per_step(seconds_per_step)


def gib(n: float, spec: str = ".1f") -> str:
    """Bytes in GiB, without the unit ("3.2 of 16.0 GiB" names it once)."""
    return f"{n / GiB:{spec}}"


def flop_count(n: float) -> str:
    """FLOPs to three significant figures in the largest unit that fits: "877 MFLOP"."""
    for unit, size in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.3g} FLOP"


def duration(s: float) -> str:
    """12 s, 3 min 05 s, 2 h 07 min."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
