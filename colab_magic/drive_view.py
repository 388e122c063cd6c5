"""What ``%mount_drive`` says: one line for a mount, an unmount or the status."""

from __future__ import annotations

from typing import Any

from .units import fmt_bytes


def mounted(mount: Any, var: str, replaced: bool = False) -> str:
    if mount.mode == "colab":
        if mount.already:
            text = f"Google Drive is already mounted at {mount.root}."
        else:
            mode = " read-only" if mount.readonly else ""
            text = f"Google Drive mounted{mode} at {mount.root}; files are under {mount.mydrive}."
    else:
        where = "In Colab, but --local was given" if mount.runtime_kind == "colab" else "Not in Colab"
        text = f"{where}: the local folder {mount.mydrive} stands in for Google Drive (chosen by {mount.chosen_by})."
        if mount.runtime_kind == "kaggle":
            text += " On Kaggle, files that must outlive the session belong under /kaggle/working."
    note = f" (this replaced the earlier value of {var})" if replaced else ""
    return f"{text} {var} = {str(mount.mydrive)!r}{note}"


def unmounted(was: Any) -> str:
    if was is None or was.mode != "colab":
        where = f" ({was.root})" if was else ""
        return f"Nothing to unmount: the local stand-in folder{where} is a plain folder; its files stay."
    return f"Google Drive at {was.root}: pending writes flushed, then unmounted."


def status(mount: Any) -> str:
    if mount is None:
        return "No drive mounted by %mount_drive in this kernel yet."
    kind = "Google Drive" if mount.mode == "colab" else "Local stand-in for Google Drive"
    mode = ", read-only" if mount.readonly else ""
    return f"{kind} at {mount.root}{mode}; files under {mount.mydrive}; {fmt_bytes(mount.free_bytes())} free."
