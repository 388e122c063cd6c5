"""Google Drive in Colab; a local folder with the same ``MyDrive`` layout everywhere else.

A notebook that reads and writes under the returned ``MyDrive`` path runs unchanged in Colab and on a
laptop. Nothing here deletes or overwrites anything, and no shell command is ever built: folders are
made with :mod:`pathlib`, and Colab's own Python API does the mounting.

:func:`current` tells the other magics where the drive is (the run history goes there).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .defaults import DRIVE_TIMEOUT_S
from .environment import Runtime

DEFAULT_MOUNTPOINT = "/content/drive"
DEFAULT_LOCAL = "~/colab_drive"
ENV_LOCAL = "COLAB_MAGIC_DRIVE"


class DriveError(Exception):
    """A mount that cannot be done, in one line that says what to do."""


@dataclass
class DriveMount:
    mode: str  # "colab" or "local"
    root: Path  # the mountpoint, or the local stand-in folder
    mydrive: Path  # where files go: <root>/MyDrive
    readonly: bool = False
    already: bool = False  # Colab: it was mounted before this call
    chosen_by: str | None = None  # local: "--local", "$COLAB_MAGIC_DRIVE" or "the default"
    runtime_kind: str | None = None  # where the kernel runs (environment.Runtime.kind)

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.mydrive).free
        except OSError:
            return None


_current: DriveMount | None = None


def current() -> DriveMount | None:
    """The drive mounted by %mount_drive in this kernel, if any."""
    return _current


def app_folder() -> Path:
    """Where colab_magic keeps its files (the run history, --backup's folders): on the drive after
    %mount_drive, so they outlive the runtime, else in the home folder."""
    mounted = current()
    return mounted.mydrive / "colab_magic" if mounted is not None else Path("~/.colab_magic").expanduser()


def forget() -> None:
    global _current
    _current = None


def mount(
    runtime: Runtime,
    mountpoint: str = DEFAULT_MOUNTPOINT,
    force_remount: bool = False,
    readonly: bool = False,
    timeout_s: float = DRIVE_TIMEOUT_S,
    local: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> DriveMount:
    global _current
    if runtime.is_colab and local is None:
        result = _mount_colab(mountpoint, force_remount, readonly, timeout_s)
    else:
        result = _mount_local(runtime, local, environ if environ is not None else os.environ)
    _current = result
    return result


def unmount(runtime: Runtime, timeout_s: float = 120.0) -> DriveMount | None:
    """Colab: flush pending writes and unmount. Returns what was mounted (None: nothing); a local
    stand-in is only forgotten, its files stay."""
    global _current
    was = _current
    if was is None or was.mode != "colab":
        _current = None
        return was
    drive = _colab_drive()
    try:
        drive.flush_and_unmount(timeout_ms=int(timeout_s * 1000))
    except Exception as exc:  # noqa: BLE001 - Colab's own errors, reworded into one line
        raise DriveError(f"Could not unmount Google Drive: {_first_line(exc)}") from None
    _current = None
    return was


# --- Colab -------------------------------------------------------------------------------------


def _colab_drive() -> Any:
    try:
        from google.colab import drive
    except ImportError:
        raise DriveError("This looks like Colab, but google.colab cannot be imported; restart the runtime.") from None
    return drive


def _mount_colab(mountpoint: str, force_remount: bool, readonly: bool, timeout_s: float) -> DriveMount:
    # Colab refuses these with its own ValueError; checking first gives a clearer line.
    if " " in mountpoint:
        raise DriveError(f"Colab cannot mount Drive on a path with a space: {mountpoint!r}. Use e.g. /content/drive.")
    root = Path(mountpoint)
    mydrive = root / "MyDrive"
    if not force_remount and os.path.ismount(root) and mydrive.is_dir():
        return DriveMount("colab", root, mydrive, readonly, already=True)
    drive = _colab_drive()
    kwargs = {"force_remount": force_remount, "timeout_ms": int(timeout_s * 1000)}
    if readonly:
        kwargs["readonly"] = True
    try:
        drive.mount(str(root), **kwargs)
    except Exception as exc:  # noqa: BLE001 - ValueError, and whatever a Colab Enterprise runtime raises
        raise DriveError(_explain_colab_error(exc, root, timeout_s)) from None
    return DriveMount("colab", root, mydrive, readonly)


def _explain_colab_error(exc: Exception, root: Path, timeout_s: float) -> str:
    text = _first_line(exc)
    low = text.lower()
    if "mount failed" in low or "timed out" in low or "timeout" in low:
        return f"Google Drive did not mount within {timeout_s:g} s ({text}). Try again, or with a larger --timeout."
    if "enterprise" in low or "drivefs" in low or "not supported" in low:
        return f"Google Drive cannot be mounted in this runtime ({text}): in Colab Enterprise, use Cloud Storage instead."
    if "symlink" in low:
        return f"{root} is a symbolic link: Colab mounts only on a real folder. Choose another --mountpoint."
    if "contain files" in low or "not empty" in low or "non-empty" in low:
        return f"{root} already holds files: Colab mounts only on an empty folder. Choose another --mountpoint."
    return f"Colab could not mount Google Drive at {root}: {text}"


def _first_line(exc: Exception) -> str:
    try:
        text = str(exc).strip() or type(exc).__name__
    except Exception:  # noqa: BLE001 - an exception whose text cannot be had
        text = type(exc).__name__
    return text.splitlines()[0]


# --- everywhere else ---------------------------------------------------------------------------


def _mount_local(runtime: Runtime, local: str | None, environ: Mapping[str, str]) -> DriveMount:
    if local is not None:
        chosen, why = local, "--local"
    elif environ.get(ENV_LOCAL):
        chosen, why = environ[ENV_LOCAL], f"${ENV_LOCAL}"
    else:
        chosen, why = DEFAULT_LOCAL, "the default"
    root = Path(chosen).expanduser()
    if not root.is_absolute():
        root = Path.cwd() / root
    _prepare(root)
    mydrive = root / "MyDrive"
    _prepare(mydrive)
    return DriveMount("local", root, mydrive, chosen_by=why, runtime_kind=runtime.kind)


def _prepare(folder: Path) -> None:
    """Make ``folder`` if it is missing (its parent must exist); use an existing one as it is."""
    try:
        _make_or_check(folder)
    except OSError as exc:  # also from the checks: a name too long for the file system, say
        raise DriveError(f"Cannot create {folder}: {exc.strerror or exc}.") from None


def _make_or_check(folder: Path) -> None:
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DriveError(f"No permission to write in {folder}. Choose another folder with --local.")
        return
    if folder.is_symlink():
        raise DriveError(f"{folder} is a symbolic link that leads nowhere (or to itself). Choose another --local.")
    if folder.exists():
        raise DriveError(f"{folder} is a file, not a folder. Choose another path with --local.")
    if not folder.parent.is_dir():
        raise DriveError(f"The folder {folder.parent} does not exist. Create it first, or choose another --local.")
    try:
        folder.mkdir()
    except PermissionError:
        raise DriveError(f"No permission to create {folder}. Choose another folder with --local.") from None
