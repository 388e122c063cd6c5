"""Exceptions said in one line: the text of a report's ``error`` and of the notes on our own failures."""

from __future__ import annotations


def describe(exc: BaseException, first_line: bool = False) -> str:
    """"ValueError: text" for an exception (the text of a report's ``error``), also when its own
    __str__ raises: the user's exception must come through whatever it does. ``first_line``: only the
    first line of the text."""
    try:
        text = str(exc).strip()
    except Exception:  # noqa: BLE001
        text = "(its message could not be read)"
    if first_line:
        text = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
