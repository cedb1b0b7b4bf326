"""Tables for people: a rich table on a terminal, whole plain lines anywhere else.

A CI log is not a terminal: rich would squeeze a table to 80 columns there, cutting every
value and wrapping a reason one word per line. Off a terminal each row is one line with
every value in full, so nothing is cut and a grep finds it. On a terminal, columns that
say nothing for this table (no tokens, no cost, no model in a script-only phase) are left
out. Cells are made printable here, once, whatever a worker put in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text

from runner.text import one_line, printable

# What a cell holds when it has nothing to say.
NOTHING = frozenset({"", "-", "0", "0s", "$0.0000", "0.0s"})


@dataclass(frozen=True)
class Cell:
    text: str
    style: str = ""


@dataclass
class Grid:
    title: str
    columns: Sequence[str]
    rows: list[list[Cell]] = field(default_factory=list)
    optional: frozenset[str] = frozenset()   # left out when no row has anything in them

    def add(self, *cells: str | Cell) -> None:
        self.rows.append([c if isinstance(c, Cell) else Cell(c) for c in cells])

    def shown_columns(self) -> list[int]:
        return [i for i, name in enumerate(self.columns)
                if name not in self.optional
                or any(row[i].text not in NOTHING for row in self.rows)]


def show(console: Console, grid: Grid) -> None:
    """Print ``grid`` as a table on a terminal, or as one whole line per row elsewhere."""
    if console.is_terminal:
        console.print(as_table(grid))
        return
    for line in plain_lines(grid):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def as_table(grid: Grid) -> Table:
    shown = grid.shown_columns()
    table = Table(title=printable(grid.title))
    for i in shown:
        table.add_column(grid.columns[i])
    for row in grid.rows:
        table.add_row(*(Text(printable(row[i].text), style=row[i].style) for i in shown))
    return table


def plain_lines(grid: Grid) -> list[str]:
    """The title, then each row: its first cell, then `column: value` for each cell that
    says something, in full."""
    shown = grid.shown_columns()
    lines = [one_line(grid.title)]
    for row in grid.rows:
        said = [f"{grid.columns[i]}: {row[i].text}" for i in shown[1:]
                if row[i].text not in NOTHING]
        lines.append(one_line(" | ".join([row[shown[0]].text, *said])))
    return lines
