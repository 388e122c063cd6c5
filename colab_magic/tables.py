"""Tables rendered twice: aligned plain text for terminals, escaped HTML for notebooks.

Reports build a list of :class:`Table` and hand it to :func:`to_text` or :func:`to_html`, so the
two renderings never drift apart.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
import textwrap
from dataclasses import dataclass, field
from typing import Any

from .units import NA

MAX_WIDTH = 100  # text wider than this is hard to read even in a wide terminal
# A cell that is a number, with at most a short unit: right-aligned, so that digits line up.
_NUMBER = re.compile(r"^(?:[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?\s?(?:%|x|[A-Za-z/°]{1,6})?|n/a|-)$")


@dataclass
class Table:
    title: str
    rows: list[list[str]]
    header: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # lines shown under the table
    # "answer": lines that lead the output (the headline), no table; "details": the evidence behind
    # the answer, collapsed in HTML; "table": everything else
    kind: str = "table"
    image: bytes | None = None  # a PNG: shown in HTML, left out of text


def text_width() -> int:
    return max(40, min(shutil.get_terminal_size((80, 24)).columns, MAX_WIDTH))


def _numeric_columns(table: Table) -> set[int]:
    if not table.rows:
        return set()
    width = max(len(row) for row in table.rows)
    keyed = 1  # the first column names the row
    return {
        i for i in range(keyed, width)
        if all(_NUMBER.match(row[i]) for row in table.rows if i < len(row) and row[i])
        and any(i < len(row) and row[i] not in ("", "-", NA) for row in table.rows)
    }


def _wrap(line: str, width: int, indent: int) -> list[str]:
    """``line`` in lines of at most ``width``, later lines indented by ``indent`` (a hanging indent)."""
    if len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip(" "))
    return textwrap.wrap(line.lstrip(" "), width, initial_indent=" " * lead, subsequent_indent=" " * indent,
                         break_on_hyphens=False, break_long_words=True) or [line]


def _row_lines(cells: list[str], cols: list[int], numeric: set[int], width: int) -> list[str]:
    padded = [cell.rjust(cols[i]) if i in numeric else cell.ljust(cols[i]) for i, cell in enumerate(cells)]
    line = ("  " + "  ".join(padded)).rstrip()
    if len(line) <= width or not cells:
        return [line]
    # Too wide: wrap the last cell under its own column when that leaves room, else the whole row.
    start = len("  " + "  ".join(padded[:-1])) + 2 if len(cells) > 1 else 2
    room = width - start
    if room >= 24:
        pieces = textwrap.wrap(cells[-1], room, break_on_hyphens=False) or [""]
        return [("  " + "  ".join(padded[:-1] + [pieces[0]])).rstrip()] + [" " * start + p for p in pieces[1:]]
    return _wrap(line, width, 6)


def _widths(grid: list[list[str]]) -> list[int]:
    return [max(len(row[i]) if i < len(row) else 0 for row in grid) for i in range(max(len(r) for r in grid))]


def _too_wide(cols: list[int], width: int) -> bool:
    """Rows that cannot fit even with the last column wrapped under itself."""
    before_last = 2 + sum(cols[:-1]) + 2 * (len(cols) - 1)
    return 2 + sum(cols) + 2 * (len(cols) - 1) > width and width - before_last < 24


def _expanded(table: Table, width: int) -> list[str]:
    """One block per row, "column: value" pairs wrapped under it (as psql's expanded display), for a
    table too wide for the terminal."""
    lines: list[str] = []
    header = table.header or []
    if not header[0]:  # a column per item (runs, devices), rows named in the first column: by column
        for j, name in enumerate(header[1:], 1):
            pairs = [f"{row[0]}: {row[j]}" for row in table.rows if j < len(row) and row[j]]
            lines.extend(_wrap(f"  {name}", width, 4))
            lines.extend(_wrap("    " + "; ".join(pairs), width, 4))
        return lines
    for row in table.rows:
        pairs = [f"{h}: {c}" for h, c in zip(header[1:], row[1:], strict=False) if c]
        lines.extend(_wrap(f"  {header[0]}: {row[0]}", width, 4))
        lines.extend(_wrap("    " + "; ".join(pairs), width, 4))
    return lines


# The longest a cell (and a title or note) is shown: a history record may hold a 10 MB model name,
# and wrapping one long word costs time in the square of its length.
MAX_CELL, MAX_LINE = 500, 4000


def _shown(text: str, limit: int) -> str:
    """``text`` as it can be shown: cut at ``limit`` characters, and lone surrogates (text read from a
    file that was not UTF-8) escaped, since no front end can encode them."""
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe(table: Table) -> Table:
    return Table(
        _shown(table.title, MAX_LINE),
        [[_shown(cell, MAX_CELL) for cell in row] for row in table.rows],
        [_shown(cell, MAX_CELL) for cell in table.header] if table.header is not None else None,
        [_shown(note, MAX_LINE) for note in table.notes],
        table.kind,
        table.image,
    )


def to_text(tables: list[Table], width: int | None = None) -> str:
    width = width or text_width()
    blocks = []
    for table in map(_safe, tables):
        if table.image is not None:
            continue
        if table.kind == "answer":
            blocks.append("\n".join(w for line in [table.title] + table.notes for w in _wrap(line, width, 2)))
            continue
        lines = _wrap(table.title, width, 2)
        grid = ([table.header] if table.header else []) + table.rows
        cols = _widths(grid) if grid else []
        if table.header and _too_wide(cols, width):
            lines.extend(_expanded(table, width))
        elif grid:
            numeric = _numeric_columns(table)
            for n, row in enumerate(grid):
                lines.extend(_row_lines(row, cols, numeric, width))
                if table.header and n == 0:  # as wide as the table, at most the width (a long last cell wraps)
                    lines.append(("  " + "  ".join("-" * w for w in cols))[:width])
        for note in table.notes:
            lines.extend(_wrap(f"  {note}", width, 4))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# Colours come from the notebook's own theme (currentColor, inherited text): readable in light and
# dark themes alike.
_STYLE = (
    "<style>.cm-report table{border-collapse:collapse;margin:0 0 .8em 0;font-size:12px;color:inherit}"
    ".cm-report th,.cm-report td{border:1px solid rgba(128,128,128,.5);padding:2px 8px;text-align:left!important;"
    "vertical-align:top;color:inherit;background:transparent}"
    ".cm-report td.cm-num{text-align:right!important;font-variant-numeric:tabular-nums}"
    ".cm-report caption{text-align:left;font-weight:bold;padding:2px 0;color:inherit}"
    ".cm-report .cm-note{margin:0 0 .8em 0;font-size:12px}"
    ".cm-report .cm-title{margin:0 0 .2em 0;font-size:12px;font-weight:bold}"
    ".cm-report .cm-answer{margin:0 0 .6em 0;font-size:14px;font-weight:bold}"
    ".cm-report details{margin:0 0 .8em 0}.cm-report summary{cursor:pointer;font-size:12px}</style>"
)


def _html_table(table: Table) -> list[str]:
    esc = html.escape
    if not table.rows and not table.header:  # a titled list of lines: an empty table would squeeze its caption
        return [f'<p class="cm-title">{esc(table.title)}</p>'] + [f'<p class="cm-note">{esc(n)}</p>' for n in table.notes]
    parts = [f"<table><caption>{esc(table.title)}</caption>"]
    if table.header:
        parts.append("<thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in table.header) + "</tr></thead>")
    parts.append("<tbody>")
    numeric = _numeric_columns(table)
    for row in table.rows:
        # In a keyed table the first column names the row: a header cell reads better.
        first = f"<th>{esc(row[0])}</th>" if row else ""
        cells = "".join(
            f'<td class="cm-num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row[1:], 1)
        )
        parts.append("<tr>" + first + cells + "</tr>")
    parts.append("</tbody></table>")
    parts.extend(f'<p class="cm-note">{esc(note)}</p>' for note in table.notes)
    return parts


def to_html(tables: list[Table]) -> str:
    esc = html.escape
    parts = [_STYLE, '<div class="cm-report">']
    open_details = False
    for table in map(_safe, tables):
        if table.kind == "details" and not open_details:
            parts.append("<details><summary>Details: per epoch, hardware, sampler</summary>")
            open_details = True
        elif table.kind != "details" and open_details:
            parts.append("</details>")
            open_details = False
        if table.image is not None:
            data = base64.b64encode(table.image).decode()
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{esc(table.title)}" style="max-width:100%">')
        elif table.kind == "answer":
            parts.append(f'<p class="cm-answer">{esc(table.title)}</p>')
            parts.extend(f'<p class="cm-answer">{esc(n)}</p>' for n in table.notes)
        else:
            parts.extend(_html_table(table))
    if open_details:
        parts.append("</details>")
    parts.append("</div>")
    return "".join(parts)


class Rendered:
    """``__str__``, ``_repr_pretty_`` and ``_repr_mimebundle_`` for a result, from one list of tables.

    A subclass's ``tables()`` draws it (through its view module, which imports only types), and
    ``text_tables()`` the text where that is shorter. A display in a notebook asks for text and HTML at
    once: one ``tables()`` call serves both.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # IPython's pretty printer takes the first class in the MRO that defines __repr__ (a dataclass
        # does), unless that class also has _repr_pretty_: put it on each subclass itself.
        cls._repr_pretty_ = Rendered._repr_pretty_  # type: ignore[method-assign]

    def tables(self) -> list[Table]:
        raise NotImplementedError

    def text_tables(self) -> list[Table] | None:
        """The plain text's own, shorter tables (None: the same as the HTML's)."""
        return None

    def _text(self, drawn: list[Table] | None = None) -> str:
        own = self.text_tables()
        return to_text(own if own is not None else drawn if drawn is not None else self.tables())

    def __str__(self) -> str:
        return self._text()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"{type(self).__name__}(...)" if cycle else str(self))

    def _repr_html_(self) -> str:
        return to_html(self.tables())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        drawn = self.tables()
        return {"text/plain": self._text(drawn), "text/html": to_html(drawn)}
