"""Reading the files partners and territories send: CSV (``;`` or ``,``, UTF-8 or Latin-1) and XLSX.

Every cell stays a string (codes keep their leading zeros); :func:`parse_french_decimal` reads
``1 234,56`` as well as ``1234.56``.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from datetime import time as dt_time
from decimal import Decimal, InvalidOperation

from ti_shared.problems import Problem

XLSX_MAGIC = b"PK\x03\x04"


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1252/Latin-1."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_csv(data: bytes) -> list[dict[str, str]]:
    """Rows as dicts keyed by the stripped header names; empty lines skipped."""
    text = decode_text(data)
    if not text.strip():
        raise Problem(422, "The file is empty", title="Invalid content")
    first_line = text.splitlines()[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first_line))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise Problem(422, f"The CSV file could not be read: {exc}", title="Invalid content") from exc
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise Problem(422, "The CSV header repeats a column name", title="Invalid content")
    out = []
    for line_no, cells in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            if any(c.strip() for c in cells[len(header) :]):
                raise Problem(
                    422,
                    f"Line {line_no} has {len(cells)} cells but the header has {len(header)} columns "
                    "(a separator inside an unquoted value?)",
                    title="Invalid content",
                )
            cells = cells[: len(header)]
        cells = cells + [""] * (len(header) - len(cells))
        out.append({h: c.strip() for h, c in zip(header, cells, strict=True)})
    return out


def read_xlsx(data: bytes) -> list[dict[str, str]]:
    from python_calamine import CalamineWorkbook

    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet = workbook.get_sheet_by_index(0).to_python(skip_empty_area=True)
    except Exception as exc:
        raise Problem(422, f"The XLSX file could not be read: {exc}", title="Invalid content") from exc
    if not sheet:
        raise Problem(422, "The workbook's first sheet is empty", title="Invalid content")
    header = [_cell(h) for h in sheet[0]]
    out = []
    for cells in sheet[1:]:
        values = [_cell(c) for c in cells] + [""] * (len(header) - len(cells))
        if not any(values):
            continue
        out.append(dict(zip(header, values[: len(header)], strict=True)))
    return out


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


def read_table(data: bytes, media_type: str = "") -> list[dict[str, str]]:
    """A CSV or an XLSX file, told apart by its media type or its first bytes."""
    if data.startswith(XLSX_MAGIC) or "spreadsheetml" in media_type:
        return read_xlsx(data)
    return read_csv(data)


_FR_NUMBER = re.compile(r"^-?[0-9]+([.,][0-9]+)?$")


def parse_french_decimal(text: str) -> Decimal:
    """``1 234,56`` → ``Decimal('1234.56')``; also ``1234.56``, ``1234`` and ``1.234,56``."""
    cleaned = text.replace("\u202f", "").replace("\xa0", "").replace(" ", "").replace("€", "")
    if "," in cleaned and "." in cleaned:
        cleaned = cleaned.replace(".", "")
    cleaned = cleaned.replace(",", ".")
    if not _FR_NUMBER.match(cleaned):
        raise ValueError(f"'{text}' is not a number")
    try:
        return Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"'{text}' is not a number") from exc
