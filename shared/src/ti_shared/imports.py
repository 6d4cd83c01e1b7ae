"""Reading an import's file the way its service declares it, the same way in every service.

A service declares the columns of a kind of file as a :class:`Layout`: each column's own name and
the other spellings it is known by (GRIST's labels ``Date de début``, SCDL's camelCase
``nomAttribuant``, ANCT's lower case ``insee_com``), the required ones, the columns the format
defines (their order, when it fixes one) and its separator. :func:`read_import` then reads the file
(``ti_shared.tabular.read_sheet``) and matches its header **ignoring case, accents and separators**
(:func:`fold_header`: ``NomAttribuant``, ``nom_attribuant`` and ``Nom attribuant`` are one column).
Nothing is dropped or merged without a word: a header matched only once folded, an unknown column
(its values are not imported), a missing column of the format, columns out of the format's order, a
file that is not UTF-8 or not separated as the format says — each is a warning of the file; two
headers for one column and a missing required column refuse the file (422).

What the import reports share (:class:`Message`, :class:`ImportCounts`, :class:`RowNotes`) is here
too; each service keeps its own report's shape (docs/imports.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from ti_shared.cells import Cell
from ti_shared.problems import Problem
from ti_shared.tabular import Table, TableLimits, read_sheet

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

RowOutcome = Literal["created", "updated", "unchanged", "rejected"]


class Message(BaseModel):
    """An error or a warning of an import: where (``["header", "Montant"]``, ``["row", 3, "montant"]``…) and what."""

    loc: list[str | int] = Field(examples=[["montant"]])
    msg: str = Field(examples=["'137 825,00' read as 137825.00"])


class ImportCounts(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def add(self, outcome: RowOutcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


def fold_header(text: str) -> str:
    """A header as it is compared: lower case, no accents, no separators at all (spaces, ``_``, ``-``,
    ``.``, apostrophes, a BOM): ``NomAttribuant``, ``nom_attribuant``, ``Nom attribuant`` →
    ``nomattribuant``; ``Date de début`` → ``datededebut``."""
    plain = unicodedata.normalize("NFKD", text.replace("œ", "oe").replace("Œ", "oe"))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return re.sub(r"[^0-9a-z]+", "", plain.casefold())


@dataclass(frozen=True)
class Layout:
    """The columns of a kind of file, as the service that reads it declares them.

    ``columns``: each column's own name → the other spellings it is known by (all compared folded;
    only the name and these spellings are read without a warning). ``required``: columns without
    which the file is refused. ``standard``: the columns the format itself defines, in its order (a
    missing one is a warning; with ``ordered``, so are columns out of that order). ``ignored``:
    columns known to the format that the platform deliberately does not read (docs/imports.md lists
    them; no warning). ``delimiter``: the format's separator (another one is a warning).
    """

    name: str
    columns: Mapping[str, tuple[str, ...]]
    required: tuple[str, ...] = ()
    standard: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    ordered: bool = False
    delimiter: str | None = None

    def spellings(self) -> dict[str, str | None]:
        """Folded spelling → column (None: an ignored column)."""
        table: dict[str, str | None] = {fold_header(name): None for name in self.ignored}
        for name, aliases in self.columns.items():
            for spelling in (name, *aliases):
                table.setdefault(fold_header(spelling), name)
        return table


@dataclass
class HeaderMatch:
    """A file's header against a layout: the column each header gives, and what departs from it."""

    #: column → header as written in the file
    columns: dict[str, str]
    #: headers as written that are no column of the layout
    unknown: list[str]
    warnings: list[Message]
    errors: list[Message]


def match_header(header: Sequence[str], layout: Layout) -> HeaderMatch:
    """Which column each header of the file gives (see the module's docstring for the rules)."""
    spellings = layout.spellings()
    columns: dict[str, str] = {}
    unknown: list[str] = []
    warnings: list[Message] = []
    errors: list[Message] = []
    for written in header:
        folded = fold_header(written)
        if folded not in spellings:
            unknown.append(written)
            warnings.append(Message(loc=["header", written], msg=_unknown(written, layout)))
            continue
        name = spellings[folded]
        if name is None:
            continue
        if name in columns:
            errors.append(
                Message(loc=["header", written], msg=f"'{columns[name]}' and '{written}' are both the column {name}: keep one")
            )
            continue
        columns[name] = written
        if written != name and written not in layout.columns[name]:
            warnings.append(Message(loc=["header", written], msg=f"column '{written}' read as {name}"))
    for name in layout.required:
        if name not in columns:
            errors.append(Message(loc=["header", name], msg=f"column {name} is missing" + _also(name, layout)))
    for name in layout.standard:
        if name not in columns and name not in layout.required:
            warnings.append(Message(loc=["header", name], msg=f"column {name} of {layout.name} is absent"))
    if layout.ordered:
        present = [columns[name] for name in layout.standard if name in columns]
        given = [h for h in header if h in present]
        if given != present:
            warnings.append(
                Message(loc=["header"], msg=f"the columns are not in the order of {layout.name}: " + ", ".join(layout.standard))
            )
    return HeaderMatch(columns, unknown, warnings, errors)


def _unknown(written: str, layout: Layout) -> str:
    if written.startswith("(column "):
        return f"a column without a header {written[1:-1]} holds values: they are not imported"
    return f"column '{written}' is not a column of {layout.name}: its values are not imported"


def _also(name: str, layout: Layout) -> str:
    aliases = layout.columns.get(name, ())
    return f" (also read as: {', '.join(aliases)})" if aliases else ""


@dataclass
class ImportRow:
    """One data row: its number in the file (the header is row 1) and its cells by column."""

    line: int
    cells: dict[str, str]
    #: the cells of unknown columns, by header as written
    extra: dict[str, str] = field(default_factory=dict)

    def get(self, column: str) -> str:
        return self.cells.get(column, "")


@dataclass
class ImportTable:
    """A file read against a layout: its rows by column, and the warnings of the file as a whole."""

    layout: Layout
    table: Table
    header: HeaderMatch
    rows: list[ImportRow]
    warnings: list[Message]

    def has(self, column: str) -> bool:
        return column in self.header.columns

    def written(self, column: str) -> str:
        """The column's header as the file writes it (its own name when the file lacks it)."""
        return self.header.columns.get(column, column)


_ENCODINGS = {"windows-1252": "Windows-1252", "latin-1": "Latin-1 (ISO-8859-1)"}


def file_warnings(table: Table, layout: Layout) -> list[Message]:
    """What the file as a whole departs from: UTF-8, the format's separator."""
    warnings: list[Message] = []
    if table.encoding in _ENCODINGS:
        warnings.append(
            Message(
                loc=["file"],
                msg=f"the file is not UTF-8: read as {_ENCODINGS[table.encoding]} (check its accented letters)",
            )
        )
    if layout.delimiter is not None and table.delimiter is not None and table.delimiter != layout.delimiter:
        warnings.append(
            Message(
                loc=["file"],
                msg=f"the columns are separated by {table.delimiter!r}; {layout.name} separates them by {layout.delimiter!r}",
            )
        )
    return warnings


def header_problem(errors: Sequence[Message], header: Sequence[str]) -> Problem:
    """The 422 of a file whose header cannot be read (a required column missing, two headers for one)."""
    return Problem(
        422,
        "; ".join(e.msg for e in errors) + ". The file's header is: " + ", ".join(header)[:500],
        title="Invalid content",
        kind="import-header",
        errors=[e.model_dump() for e in errors],
    )


def read_import(
    data: bytes,
    media_type: str,
    layout: Layout,
    *,
    max_rows: int | None = None,
    limits: TableLimits | None = None,
) -> ImportTable:
    """Read an import's file against ``layout``: 422 for an unreadable header or a file without data row."""
    table = read_sheet(data, media_type, max_rows=max_rows, limits=limits)
    return import_table(table, layout)


def import_table(table: Table, layout: Layout) -> ImportTable:
    """:func:`read_import` of a table already read."""
    header = match_header(table.header, layout)
    if header.errors:
        raise header_problem(header.errors, table.header)
    if not table.rows:
        raise Problem(422, "The file has a header but no data row", title="Invalid content")
    by_written = {written: name for name, written in header.columns.items()}
    rows = [
        ImportRow(
            line,
            {by_written[h]: v for h, v in cells.items() if h in by_written},
            {h: v for h, v in cells.items() if h in header.unknown and v},
        )
        for line, cells in zip(table.lines, table.rows, strict=True)
    ]
    warnings = [*file_warnings(table, layout), *header.warnings]
    return ImportTable(layout, table, header, rows, warnings)


@dataclass
class RowNotes:
    """The errors (fatal: the row is rejected) and warnings (the row is read) of one row, located as
    ``[*prefix, column]`` (a service's reports locate messages their own way: ``prefix=("row", 3)``)."""

    prefix: tuple[str | int, ...] = ()
    errors: list[Message] = field(default_factory=list)
    warnings: list[Message] = field(default_factory=list)

    def error(self, column: str | None, msg: str) -> None:
        self.errors.append(Message(loc=[*self.prefix, *([column] if column else [])], msg=msg))

    def warn(self, column: str | None, msg: str) -> None:
        self.warnings.append(Message(loc=[*self.prefix, *([column] if column else [])], msg=msg))

    def read(self, column: str, text: str, reader: Callable[[str], Cell[T]]) -> T | None:
        """``reader``'s value of a cell (None for an empty one), its note a warning, its refusal an error."""
        if not text.strip():
            return None
        try:
            cell = reader(text)
        except ValueError as exc:
            self.error(column, str(exc))
            return None
        if cell.note:
            self.warn(column, cell.note)
        return cell.value

    @property
    def ok(self) -> bool:
        return not self.errors


def repeated(keys: Iterable[K | None]) -> dict[int, list[int]]:
    """For each position whose key (not None) another position shares: the other positions, in order."""
    positions: dict[K, list[int]] = {}
    for index, key in enumerate(keys):
        if key is not None:
            positions.setdefault(key, []).append(index)
    return {i: [j for j in group if j != i] for group in positions.values() if len(group) > 1 for i in group}
