"""Tables rendered twice: aligned plain text for terminals, escaped HTML for notebooks.

Reports build a list of :class:`Table` and hand it to :func:`to_text` or :func:`to_html`, so the
two renderings never drift apart.
"""

from __future__ import annotations

import html
import importlib
from dataclasses import dataclass, field
from typing import ClassVar

NA = "n/a"


@dataclass
class Table:
    title: str
    rows: list[list[str]]
    header: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # lines shown under the table


def to_text(tables: list[Table]) -> str:
    blocks = []
    for table in tables:
        lines = [table.title]
        grid = ([table.header] if table.header else []) + table.rows
        if grid:
            width = max(len(row) for row in grid)
            cols = [max(len(row[i]) if i < len(row) else 0 for row in grid) for i in range(width)]
            for n, row in enumerate(grid):
                cells = [cell.ljust(cols[i]) for i, cell in enumerate(row)]
                lines.append(("  " + "  ".join(cells)).rstrip())
                if table.header and n == 0:
                    lines.append("  " + "  ".join("-" * w for w in cols))
        lines.extend(f"  {note}" for note in table.notes)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


_STYLE = (
    "<style>.cm-report table{border-collapse:collapse;margin:0 0 .8em 0;font-size:12px}"
    ".cm-report th,.cm-report td{border:1px solid #ccc;padding:2px 8px;text-align:left!important;vertical-align:top}"
    ".cm-report caption{text-align:left;font-weight:bold;padding:2px 0}"
    ".cm-report .cm-note{margin:0 0 .8em 0;font-size:12px}</style>"
)


def to_html(tables: list[Table]) -> str:
    esc = html.escape
    parts = [_STYLE, '<div class="cm-report">']
    for table in tables:
        parts.append(f"<table><caption>{esc(table.title)}</caption>")
        if table.header:
            parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.header) + "</tr></thead>")
        parts.append("<tbody>")
        for row in table.rows:
            # In a keyed table the first column names the row: a header cell reads better.
            first, rest = (f"<th>{esc(row[0])}</th>", row[1:]) if row else ("", [])
            parts.append("<tr>" + first + "".join(f"<td>{esc(c)}</td>" for c in rest) + "</tr>")
        parts.append("</tbody></table>")
        for note in table.notes:
            parts.append(f'<p class="cm-note">{esc(note)}</p>')
    parts.append("</div>")
    return "".join(parts)


class Rendered:
    """``__str__``, ``_repr_pretty_`` and ``_repr_html_`` for a result, from one list of tables.

    ``_view`` names the module whose ``tables(result)`` draws it. The module is imported on the first
    rendering, so data modules never import their views and views import only types.
    """

    _view: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer takes the first class in the MRO that defines __repr__ (a dataclass
        # does), unless that class also has _repr_pretty_: put it on each subclass itself.
        cls._repr_pretty_ = Rendered._repr_pretty_

    def tables(self) -> list[Table]:
        return importlib.import_module(self._view).tables(self)

    def __str__(self) -> str:
        return to_text(self.tables())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(f"{type(self).__name__}(...)" if cycle else str(self))

    def _repr_html_(self) -> str:
        return to_html(self.tables())


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return NA
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return NA  # unreachable; keeps type checkers quiet


def fmt(value, spec: str = "", unit: str = "") -> str:
    """``value`` formatted with ``spec`` and a unit, or n/a when the metric is missing."""
    if value is None:
        return NA
    return f"{value:{spec}}{unit}"


def fmt_used(used: float | None, total: float | None) -> str:
    if used is None and total is None:
        return NA
    text = f"{fmt_bytes(used)} / {fmt_bytes(total)}"
    if used is not None and total:
        text += f" ({100 * used / total:.0f}%)"
    return text
