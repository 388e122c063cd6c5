"""``%%timed_fit --live``: the line of :mod:`colab_magic.live`, kept up to date in place while fits run.

In a notebook it is an IPython display handle, updated from the sampler's thread (Jupyter, Colab and
VS Code all replace a display in place); the summary takes its place at the end. In a terminal it is
one status line on stderr, redrawn with a carriage return, only while Keras' own progress bar is off
(verbose 0 or 2) and stderr is a terminal: two bars on one line would garble each other. Anywhere
else it shows nothing.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Any, TextIO

from . import live
from .observer import RunningFit

EVERY_S = 1.0  # a redraw a second: fast enough to watch, a negligible cost (bench/overhead.py --live)


class LiveView:
    def __init__(self, where: str, stream: TextIO | None = None, every: float = EVERY_S) -> None:
        """``where``: "notebook" (a display handle) or "terminal" (a line on ``stream``, stderr)."""
        self.where = where
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.handle = None
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._last = 0.0
        self._stopped = False  # a sampler still ticking after the fits draws nothing more
        self._drawn = 0  # characters of the terminal line now on screen

    def watch(self, fit: RunningFit) -> None:
        """A fit started (called on its thread, before training): follow its sampler."""
        name = getattr(fit.model, "name", type(fit.model).__name__)
        if self.where == "notebook" and self.handle is None:
            from IPython.display import display

            self.handle = display(live.LiveLine(None), display_id=True)
        fit.sampler.listeners.append(lambda sampler: self._update(fit.timer, sampler, name))

    def _update(self, timer: Any, sampler: Any, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            if self._stopped or now - self._last < self.every:
                return
            self._last = now
        line = live.status(timer, sampler, name)
        with self._lock:
            if self._stopped:
                return  # stopped while this line was being made: the summary may be in its place
            if self.where == "notebook":
                if self.handle is not None:
                    self.handle.update(live.LiveLine(line))
            elif self._terminal_line_allowed(timer):
                text = line.to_text(shutil.get_terminal_size((80, 24)).columns - 1)
                self.stream.write("\r" + text.ljust(self._drawn))
                self.stream.flush()
                self._drawn = len(text)

    def _terminal_line_allowed(self, timer: Any) -> bool:
        try:
            tty = self.stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return tty and timer.fit_start is not None and not timer.plan.draws_progress

    def say(self, text: str) -> None:
        """A line of its own while fits run (the terminal's status line is cleared first)."""
        with self._lock:
            self._clear()
            self.stream.write(text + "\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def stop(self) -> None:
        """The fits are over: draw nothing more, and leave the terminal's line empty."""
        with self._lock:
            self._stopped = True
            self._clear()

    def finish(self, replacement: Any = None) -> bool:
        """The cell is over: put ``replacement`` (the summary) where the live line was, or clear it.
        True when the replacement was shown there."""
        self.stop()
        with self._lock:
            if self.handle is None:
                return False
            self.handle.update(replacement if replacement is not None else live.LiveLine(None))
        return replacement is not None
