"""What one kernel session has been told already: some things are said once per session."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Session:
    said: set[str] = field(default_factory=set)

    def once(self, key: str) -> bool:
        """True the first time ``key`` is asked, False after."""
        first = key not in self.said
        self.said.add(key)
        return first
