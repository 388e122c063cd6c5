"""A stand-in for ``google.colab.drive``: the platform boundary. It records each call and behaves as
Colab's module does: a mountpoint with a space, a symlink or files in it raises ValueError; a timeout
raises ValueError('mount failed'); a successful mount makes <mountpoint>/MyDrive."""

from __future__ import annotations

import os
import types
from pathlib import Path


class FakeDrive:
    def __init__(self, fail_with: Exception | None = None):
        self.calls: list[tuple] = []
        self.fail_with = fail_with
        self.module = types.ModuleType("google.colab.drive")
        self.module.mount = self.mount
        self.module.flush_and_unmount = self.flush_and_unmount

    def mount(self, mountpoint, force_remount=False, timeout_ms=120000, readonly=False):
        self.calls.append(("mount", mountpoint, force_remount, timeout_ms, readonly))
        if self.fail_with is not None:
            raise self.fail_with
        if " " in mountpoint:
            raise ValueError("Mountpoint must not contain a space.")
        path = Path(mountpoint)
        if path.is_symlink():
            raise ValueError("Mountpoint must not be a symlink")
        if path.is_dir() and any(path.iterdir()) and not force_remount:
            raise ValueError("Mountpoint must not already contain files")
        (path / "MyDrive").mkdir(parents=True, exist_ok=True)
        print(f"Mounted at {mountpoint}")  # what Colab itself prints

    def flush_and_unmount(self, timeout_ms=24 * 3600 * 1000):
        self.calls.append(("flush_and_unmount", timeout_ms))
        if self.fail_with is not None:
            raise self.fail_with


def install(monkeypatch, fake: FakeDrive) -> None:
    colab = types.ModuleType("google.colab")
    colab.drive = fake.module
    monkeypatch.setitem(os.sys.modules, "google.colab", colab)
    monkeypatch.setitem(os.sys.modules, "google.colab.drive", fake.module)
