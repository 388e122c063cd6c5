"""colab_magic: is my GPU actually helping, how much, and why not more?

``%load_ext colab_magic`` registers the magics. Loading stays cheap: the magics module imports no
deep-learning framework and the heavy modules are imported when a magic first runs.

The public API is ``__all__``: the result types the magics return (``-o``, ``-v``), importable from
here (each is imported on first use). Other modules stay importable but are not promised.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = [
    "DeviceInfo", "FitReport", "HistoryView", "RunSummary", "TimedFitResult", "step",
    "load_ipython_extension", "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    # The result types load their modules on first use, so that loading the extension stays light.
    if name in ("TimedFitResult", "FitReport"):
        from . import report

        return getattr(report, name)
    if name == "step":  # colab_magic.step(): a training step marked by hand
        from .step_marks import step

        return step
    if name == "RunSummary":
        from .run_summary import RunSummary

        return RunSummary
    if name == "DeviceInfo":
        from .devices import DeviceInfo

        return DeviceInfo
    if name == "HistoryView":
        from .history import HistoryView

        return HistoryView
    raise AttributeError(f"module 'colab_magic' has no attribute {name!r}")

_registered: dict[str, list[str]] = {}


def load_ipython_extension(ipython: Any) -> None:
    from .magics import ColabMagics

    magics = ColabMagics(ipython)
    ipython.register_magics(magics)
    # Remember what we registered so unload removes exactly that, and nothing of the user's.
    _registered.clear()
    _registered.update({kind: list(names) for kind, names in magics.magics.items() if names})


def unload_ipython_extension(ipython: Any) -> None:
    from . import nvml

    table = ipython.magics_manager.magics
    for kind, names in _registered.items():
        for name in names:
            table[kind].pop(name, None)
    ipython.magics_manager.registry.pop("ColabMagics", None)
    _registered.clear()
    nvml.stop_all()
