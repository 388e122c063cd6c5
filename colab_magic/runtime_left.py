"""Will this fit outlast its Colab runtime? Said once, after the fit's first epoch, while there is
still time to restart it with ``--backup``.

Nothing is asked over the network: a runtime is assumed to last at most ``COLAB_MAX_S`` from the
machine's boot (Colab's FAQ: notebooks run for at most 12 hours on the free tier; paid plans allow
longer, up to 24 hours, so this errs on the early side), and the machine's uptime stands for the
runtime's age.
"""

from __future__ import annotations

import time

import psutil

from .timing import StepTimer
from .units import duration

COLAB_MAX_S = 12 * 3600.0


def uptime_s() -> float | None:
    try:
        return max(0.0, time.time() - psutil.boot_time())
    except Exception:  # noqa: BLE001 - no boot time readable (a sandbox): no warning rather than a wrong one
        return None


def fit_left_s(timer: StepTimer) -> float | None:
    """The fit's remaining epochs at the pace of the epoch that just ended."""
    planned = timer.plan.epochs
    last = timer.epochs[-1] if timer.epochs else None
    if last is None or last.end is None or not planned:
        return None
    return max(0, planned - (last.epoch + 1)) * (last.end - last.start)


def warning(left_s: float | None, uptime: float | None, limit_s: float = COLAB_MAX_S) -> str | None:
    """One line when the fit needs longer than the runtime is likely to have left, else None."""
    if left_s is None or uptime is None:
        return None
    available = max(0.0, limit_s - uptime)
    if left_s <= available:
        return None
    return (f"This fit needs about {duration(left_s)} more, but this Colab runtime may have only "
            f"{duration(available)} left (assumed: at most {duration(limit_s)} from its start, the free tier's "
            f"limit; it has run {duration(uptime)}). Run the cell again with --backup: after a disconnect, the "
            "same cell resumes from the last finished epoch.")
