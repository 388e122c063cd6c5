"""Runs a function once the cell imports a framework: loop sources that find the framework not yet
imported when the cell starts wait for it this way, so that a cell never imports a framework it does
not use (a PyTorch cell that imported TensorFlow would pay seconds, and memory, for nothing)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from typing import Any


def when_imported(name: str, install: Callable[[], None]) -> ImportWatcher | None:
    """``install`` now if ``name`` is imported already, else once the cell imports it: the watcher to
    remove at the cell's end (None when it ran now)."""
    if name in sys.modules:
        install()
        return None
    return ImportWatcher(name, install).__enter__()


class ImportWatcher(importlib.abc.MetaPathFinder):
    """On ``sys.meta_path`` while it waits: the other finders find the module; this one only runs
    ``on_import`` after the module has been executed, then takes itself off."""

    def __init__(self, name: str, on_import: Callable[[], None]) -> None:
        self.name, self.on_import = name, on_import

    def __enter__(self) -> ImportWatcher:
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.name:
            return None
        # kept until the module is executed: a find_spec that imports nothing must not use it up
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def run_then_call(module: Any) -> None:
            exec_module(module)
            self.remove()
            self.on_import()

        spec.loader.exec_module = run_then_call  # type: ignore[method-assign]
        return spec
