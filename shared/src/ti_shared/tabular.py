"""Reading the files partners and territories send: CSV (``;`` or ``,``, UTF-8 or Latin-1) and XLSX.

Every cell stays a string (codes keep their leading zeros); :func:`read_sheet` gives the header as
written and each row's number in the file (``ti_shared.imports`` matches the header to a service's
columns); :func:`parse_french_decimal` reads ``1 234,56`` as well as ``1234.56``.

Every file is bounded before it can make memory grow (:class:`TableLimits`, docs/security.md):
a CSV by its rows, columns and cells as they are read; an XLSX by the sizes its zip declares, then by
inflating each part once (whatever the zip says) while counting the bytes and scanning every
worksheet's declared dimension and the cells actually present — the reader, which allocates a dense
grid from the first to the last cell, only runs on a workbook that passed. A refusal is a 413
problem (too large) or a 422 (not a readable file), and NUL characters are refused in every cell.
"""

from __future__ import annotations

import csv
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal
from typing import Any
from xml.parsers import expat

from ti_shared.cells import read_number
from ti_shared.problems import Problem

XLSX_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class TableLimits:
    """What one uploaded table may hold (the defaults are documented in docs/security.md)."""

    #: data rows (the header excluded)
    max_rows: int = 50_000
    max_columns: int = 256
    #: rows × columns: a CSV's data rows times its header's width; an XLSX sheet's extent
    max_cells: int = 1_000_000
    #: an XLSX's parts once inflated, all together
    max_inflated_bytes: int = 64 * 1024 * 1024
    #: parts in an XLSX's zip
    max_parts: int = 1_000


DEFAULT_LIMITS = TableLimits()
NUL_DETAIL = "NUL characters are not accepted (they cannot be stored)"


def _invalid(detail: str) -> Problem:
    return Problem(422, detail, title="Invalid content")


def _too_large(detail: str) -> Problem:
    return Problem(413, detail, title="Content too large")


def _limits(limits: TableLimits | None, max_rows: int | None) -> TableLimits:
    chosen = limits or DEFAULT_LIMITS
    if max_rows is not None and max_rows < chosen.max_rows:
        chosen = TableLimits(max_rows, chosen.max_columns, chosen.max_cells, chosen.max_inflated_bytes, chosen.max_parts)
    return chosen


def decode(data: bytes) -> tuple[str, str]:
    """The text of a CSV and the encoding it was read in: UTF-8 (with or without BOM: ``utf-8-sig``
    when it has one), else Windows-1252, else Latin-1."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        return (text[1:], "utf-8-sig") if text.startswith("\ufeff") else (text, "utf-8")
    try:
        return data.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252/Latin-1."""
    return decode(data)[0]


def sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class Table:
    """A file's header as written (in order), its data rows keyed by it, and where each row is.

    ``lines`` holds, for each row, its number in the file as a person sees it: the CSV line on which
    the record starts (the header is line 1; blank lines and line breaks inside quoted cells count),
    the sheet's row number in an XLSX. ``encoding`` is ``utf-8``, ``utf-8-sig`` (with a BOM),
    ``windows-1252``, ``latin-1`` or ``xlsx``; ``delimiter`` the CSV separator (None for an XLSX).

    A header cell left empty over an empty column is dropped (spreadsheets export trailing ones);
    over a column holding values it is named ``(column N)``, so that the values are reported, never
    lost without a word.
    """

    header: list[str]
    rows: list[dict[str, str]]
    lines: list[int]
    encoding: str
    delimiter: str | None = None


def _named_header(header: list[str], records: list[list[str]]) -> tuple[list[str], list[int]]:
    """The header's names and the positions kept: an unnamed column is dropped when empty, else named."""
    names: list[str] = []
    keep: list[int] = []
    for position, name in enumerate(header):
        if not name:
            if not any(position < len(r) and r[position] for r in records):
                continue
            name = f"(column {position + 1})"
        names.append(name)
        keep.append(position)
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise _invalid("The header repeats a column name: " + ", ".join(repeated)[:200])
    return names, keep


def read_csv_table(data: bytes, *, max_rows: int | None = None, limits: TableLimits | None = None) -> Table:
    """A CSV file (``;``, ``,`` or tab; UTF-8, Windows-1252 or Latin-1) as a :class:`Table`."""
    bound = _limits(limits, max_rows)
    text, encoding = decode(data)
    if not text.strip():
        raise _invalid("The file is empty")
    if "\x00" in text:
        raise _invalid(NUL_DETAIL)
    first_line = text.split("\n", 1)[0]
    delimiter = sniff_delimiter(first_line)
    # an upper bound of the cells the reader will create, counted at C speed before it splits anything
    if text.count(delimiter) > 4 * bound.max_cells:
        raise _too_large(f"The file holds more than {bound.max_cells} cells")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[list[str]] = []
    lines: list[int] = []
    try:
        header = [h.strip() for h in next(reader)]
        if len(header) > bound.max_columns:
            raise _too_large(f"The header has {len(header)} columns; at most {bound.max_columns}")
        last_line = reader.line_num
        for cells in reader:
            first_line_of_record, last_line = last_line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                if any(c.strip() for c in cells[len(header) :]):
                    raise _invalid(
                        f"Line {first_line_of_record} has {len(cells)} cells but the header has {len(header)} columns "
                        "(a separator inside an unquoted value?)"
                    )
                cells = cells[: len(header)]
            if len(records) >= bound.max_rows:
                raise _too_large(f"The file has more than {bound.max_rows} data rows; split it")
            if (len(records) + 1) * len(header) > bound.max_cells:
                raise _too_large(f"The file holds more than {bound.max_cells} cells (rows × columns); split it")
            records.append([c.strip() for c in cells])
            lines.append(first_line_of_record)
    except csv.Error as exc:
        raise _invalid(f"The CSV file could not be read: {exc}") from exc
    names, keep = _named_header(header, records)
    rows = [{n: (r[p] if p < len(r) else "") for n, p in zip(names, keep, strict=True)} for r in records]
    return Table(names, rows, lines, encoding, delimiter)


def read_csv(data: bytes, *, max_rows: int | None = None, limits: TableLimits | None = None) -> list[dict[str, str]]:
    """Rows as dicts keyed by the stripped header names; empty lines skipped."""
    return read_csv_table(data, max_rows=max_rows, limits=limits).rows


# --- XLSX ----------------------------------------------------------------------------------------

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_INFLATE_STEP = 1024 * 1024
_MAX_SHEET_ROW = 1_048_576
_MAX_SHEET_COLUMN = 16_384
_CELL_REF = re.compile(r"([A-Z]{1,3})([0-9]{1,7})")


def _column_number(letters: str) -> int:
    number = 0
    for ch in letters:
        number = number * 26 + (ord(ch) - 64)
    return number


def _cell_ref(text: str) -> tuple[int, int]:
    """``"C12"`` → ``(12, 3)`` (row, column), 422 outside the sheet."""
    match = _CELL_REF.fullmatch(text.upper())
    if not match:
        raise _invalid(f"The workbook has an invalid cell reference '{text[:20]}'")
    row, column = int(match.group(2)), _column_number(match.group(1))
    if not (1 <= row <= _MAX_SHEET_ROW and 1 <= column <= _MAX_SHEET_COLUMN):
        raise _invalid(f"The workbook has a cell reference outside the sheet: '{text[:20]}'")
    return row, column


class _SheetScan:
    """Counts a worksheet's cells and extent as its XML streams by (expat), refusing past the limits."""

    def __init__(self, limits: TableLimits, name: str) -> None:
        self.limits = limits
        self.name = name
        self.cells = 0
        self.row = 0
        self.column = 0
        self.low: tuple[int, int] | None = None
        self.high = (0, 0)
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.StartElementHandler = self._start
        self.parser.StartDoctypeDeclHandler = self._doctype
        self.parser.EntityDeclHandler = self._entity

    def feed(self, chunk: bytes, final: bool = False) -> None:
        try:
            self.parser.Parse(chunk, final)
        except expat.ExpatError as exc:
            raise _invalid(f"The workbook's sheet {self.name} is not well-formed XML: {exc}") from exc

    def _doctype(self, *_: Any) -> None:
        raise _invalid("The workbook's XML declares a DTD, which an XLSX never does")

    def _entity(self, *_: Any) -> None:
        raise _invalid("The workbook's XML declares entities, which an XLSX never does")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]
        if local == "c":
            self._cell(attrs.get("r"))
        elif local == "row":
            given = attrs.get("r")
            if given is not None and not (given.isdigit() and len(given) <= 7):
                raise _invalid(f"The workbook has an invalid row number '{given[:20]}'")
            self.row = int(given) if given is not None else self.row + 1
            self.column = 0
        elif local == "dimension":
            self._dimension(attrs.get("ref", ""))

    def _dimension(self, ref: str) -> None:
        first, _, last = ref.partition(":")
        if not first:
            return
        top, left = _cell_ref(first)
        bottom, right = _cell_ref(last) if last else (top, left)
        self._check_extent((min(top, bottom), min(left, right)), (max(top, bottom), max(left, right)), "declares")

    def _cell(self, ref: str | None) -> None:
        self.cells += 1
        if self.cells > self.limits.max_cells:
            raise _too_large(f"The workbook's sheet holds more than {self.limits.max_cells} cells")
        if ref is not None:
            self.row, self.column = _cell_ref(ref)
        else:
            self.column += 1
        row, column = max(self.row, 1), self.column
        if not (row <= _MAX_SHEET_ROW and 1 <= column <= _MAX_SHEET_COLUMN):
            raise _invalid("The workbook has a cell outside the sheet")
        low = (min(self.low[0], row), min(self.low[1], column)) if self.low else (row, column)
        high = (max(self.high[0], row), max(self.high[1], column))
        if low != self.low or high != self.high:
            self._check_extent(low, high, "has cells over")
            self.low, self.high = low, high

    def _check_extent(self, low: tuple[int, int], high: tuple[int, int], verb: str) -> None:
        rows, columns = high[0] - low[0] + 1, high[1] - low[1] + 1
        if rows > self.limits.max_rows + 1:
            raise _too_large(f"The workbook's sheet {verb} {rows} rows; at most {self.limits.max_rows} data rows")
        if columns > self.limits.max_columns:
            raise _too_large(f"The workbook's sheet {verb} {columns} columns; at most {self.limits.max_columns}")
        if rows * columns > self.limits.max_cells:
            raise _too_large(
                f"The workbook's sheet {verb} {rows} rows × {columns} columns; at most {self.limits.max_cells} cells"
            )


def _inflate(data: bytes, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The bytes of one part, inflated from its compressed data (its declared sizes are not trusted)."""
    header = data[info.header_offset : info.header_offset + _LOCAL_HEADER.size]
    if len(header) != _LOCAL_HEADER.size or header[:4] != XLSX_MAGIC:
        raise _invalid(f"The workbook's part {info.filename[:100]} is damaged")
    fields = _LOCAL_HEADER.unpack(header)
    start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
    compressed = memoryview(data)[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        for offset in range(0, len(compressed), _INFLATE_STEP):
            yield bytes(compressed[offset : offset + _INFLATE_STEP])
        return
    inflater = zlib.decompressobj(-15)
    try:
        for offset in range(0, len(compressed), 64 * 1024):
            pending = bytes(compressed[offset : offset + 64 * 1024])
            while pending:
                out = inflater.decompress(pending, _INFLATE_STEP)
                pending = inflater.unconsumed_tail
                if out:
                    yield out
        tail = inflater.flush()
    except zlib.error as exc:
        raise _invalid(f"The workbook's part {info.filename[:100]} cannot be inflated: {exc}") from exc
    if tail:
        yield tail


def check_workbook(data: bytes, limits: TableLimits = DEFAULT_LIMITS) -> None:
    """Refuse an XLSX beyond ``limits`` (413) or not readable (422) before any reader allocates for it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise _invalid(f"The XLSX file could not be read: {exc}") from exc
    if len(parts) > limits.max_parts:
        raise _too_large(f"The workbook has {len(parts)} parts; at most {limits.max_parts}")
    names = {p.filename for p in parts}
    if "xl/workbook.xml" not in names:
        raise _invalid("The file is not an XLSX workbook (no xl/workbook.xml)")
    declared = sum(p.file_size for p in parts)
    if declared > limits.max_inflated_bytes:
        raise _too_large(f"The workbook inflates to {declared} bytes; at most {limits.max_inflated_bytes}")
    inflated = 0
    for part in parts:
        if part.flag_bits & 0x1:
            raise _invalid("The workbook is encrypted")
        if part.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _invalid(f"The workbook's part {part.filename[:100]} uses an unsupported compression")
        is_sheet = part.filename.startswith("xl/worksheets/")
        if is_sheet and not part.filename.endswith(".xml") and not part.filename.endswith(".rels"):
            raise _invalid("Only XLSX workbooks with XML sheets are read (not XLSB)")
        scan = _SheetScan(limits, part.filename.rsplit("/", 1)[-1]) if is_sheet and part.filename.endswith(".xml") else None
        size = 0
        for chunk in _inflate(data, part):
            size += len(chunk)
            if inflated + size > limits.max_inflated_bytes:
                raise _too_large(f"The workbook inflates to more than {limits.max_inflated_bytes} bytes")
            if scan is not None:
                scan.feed(chunk)
        if size != part.file_size:
            raise _invalid(f"The workbook's part {part.filename[:100]} is not the size its zip declares")
        if scan is not None:
            scan.feed(b"", final=True)
        inflated += size


def read_xlsx_table(data: bytes, *, max_rows: int | None = None, limits: TableLimits | None = None) -> Table:
    """The first sheet of an XLSX (after :func:`check_workbook`) as a :class:`Table`."""
    from python_calamine import CalamineWorkbook

    bound = _limits(limits, max_rows)
    check_workbook(data, bound)
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        worksheet = workbook.get_sheet_by_index(0)
        sheet = worksheet.to_python(skip_empty_area=True)
        first_row = (worksheet.start or (0, 0))[0] + 1
    except Exception as exc:
        raise _invalid(f"The XLSX file could not be read: {exc}") from exc
    if not sheet:
        raise _invalid("The workbook's first sheet is empty")
    header = [_cell(h) for h in sheet[0]]
    if any("\x00" in h for h in header):
        raise _invalid(NUL_DETAIL)
    records: list[list[str]] = []
    lines: list[int] = []
    for index, cells in enumerate(sheet[1:], 1):
        values = [_cell(c) for c in cells] + [""] * (len(header) - len(cells))
        if not any(values):
            continue
        if any("\x00" in v for v in values):
            raise _invalid(NUL_DETAIL)
        records.append(values[: len(header)])
        lines.append(first_row + index)
    names, keep = _named_header(header, records)
    rows = [{n: r[p] for n, p in zip(names, keep, strict=True)} for r in records]
    return Table(names, rows, lines, "xlsx")


def read_xlsx(data: bytes, *, max_rows: int | None = None, limits: TableLimits | None = None) -> list[dict[str, str]]:
    """The first sheet's rows as dicts keyed by its header row (after :func:`check_workbook`)."""
    return read_xlsx_table(data, max_rows=max_rows, limits=limits).rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == dt_time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def is_xlsx(data: bytes, media_type: str = "") -> bool:
    return data.startswith(XLSX_MAGIC) or "spreadsheetml" in media_type


def read_sheet(data: bytes, media_type: str = "", *, max_rows: int | None = None, limits: TableLimits | None = None) -> Table:
    """A CSV or an XLSX file as a :class:`Table`, told apart by its media type or its first bytes."""
    if is_xlsx(data, media_type):
        return read_xlsx_table(data, max_rows=max_rows, limits=limits)
    return read_csv_table(data, max_rows=max_rows, limits=limits)


def read_table(
    data: bytes, media_type: str = "", *, max_rows: int | None = None, limits: TableLimits | None = None
) -> list[dict[str, str]]:
    """A CSV or an XLSX file's rows, told apart by its media type or its first bytes."""
    return read_sheet(data, media_type, max_rows=max_rows, limits=limits).rows


def parse_french_decimal(text: str) -> Decimal:
    """``1 234,56`` → ``Decimal('1234.56')``; also ``1234.56``, ``1234``, ``1.234,56`` and ``120 000,00 €``
    (``ti_shared.cells.read_number``, which also says when the text departs from the plain form)."""
    return read_number(text).value
