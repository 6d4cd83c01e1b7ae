"""PostgreSQL ``COPY … FROM STDIN`` in its text format, from lines a repository builds in one pass.

asyncpg's binary ``COPY`` (``ti_shared.db.copy_records``) encodes every value of every record through
a codec, jsonb values through a Python callback: for a wide row (a grant's 25 columns, three numerics,
two instants, three JSON documents) that costs more CPU than building the row's text. Here a row is
the text of its values joined by tabs — a value already written as PostgreSQL reads it (``str`` of a
``Decimal`` or an ``int``, ``isoformat`` of a date, :func:`instant_text` of an instant, the JSON text
of a document), None for NULL — and the whole table goes as one buffer.

A row none of whose values holds a backslash, a tab, a line feed or a carriage return (told by
counting them over the joined row: as many tabs as separators, as many backslashes as NULL markers)
is sent as it is; any other is escaped value by value (:func:`escape`). A NUL cannot be stored in a
text column either way: PostgreSQL refuses the row, as it refuses it in a binary ``COPY``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

#: a NULL in the text format
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def escape(value: str | None) -> str:
    """One value as the text format writes it: NULL as ``\\N``, a backslash, tab, line feed or carriage
    return escaped."""
    return NULL if value is None else value.translate(_ESCAPES)


def text_line(values: Sequence[str | None]) -> str:
    """A row of the text format (without its line feed): its values joined by tabs, each escaped when
    the row holds one to escape."""
    nulls = values.count(None)
    line = "\t".join([NULL if v is None else v for v in values]) if nulls else "\t".join(values)  # type: ignore[arg-type]
    if line.count("\\") != nulls or line.count("\t") != len(values) - 1 or "\n" in line or "\r" in line:
        return "\t".join([escape(v) for v in values])
    return line


def escape_bytes(value: bytes) -> bytes:
    """:func:`escape` of a value given as UTF-8 bytes (a JSON text as its encoder returned it)."""
    return value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n").replace(b"\r", b"\\r")


def bytes_line(values: Sequence[bytes]) -> bytes:
    """:func:`text_line` of values given as UTF-8 bytes (no NULL), with its line feed: sent as it is when
    it holds no backslash, no tab but its separators and no line break, else escaped value by value."""
    line = b"\t".join(values)
    if b"\\" in line or line.count(b"\t") != len(values) - 1 or b"\n" in line or b"\r" in line:
        line = b"\t".join([escape_bytes(v) for v in values])
    return line + b"\n"


def instant_text(value: datetime) -> str:
    """An instant as ``timestamptz`` reads it, in UTC; a naive ``datetime`` is refused, as
    ``ti_shared.db.UtcDateTime`` refuses it (it would mean the server's local time)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: an instant needs its UTC offset")
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat()


class InstantTexts:
    """The texts of the instants of one ``COPY`` (a batch's rows mostly share one), each written once
    (equal instants have one text in UTC)."""

    def __init__(self) -> None:
        self._known: dict[datetime, str] = {}

    def __call__(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        text = self._known.get(value)
        if text is None:
            text = self._known[value] = instant_text(value)
        return text


def lines_buffer(rows: Iterable[Sequence[str | None]]) -> bytes:
    """Rows of values (text or None) as the text format's bytes, each row on its line."""
    return "".join([text_line(r) + "\n" for r in rows]).encode()


async def copy_text(session: AsyncSession, table: sa.Table, columns: Sequence[str], data: bytes) -> int:
    """``COPY table (columns) FROM STDIN`` (text format) of ``data`` (:func:`lines_buffer`, or lines built
    with :func:`text_line`, UTF-8), in the session's transaction (PostgreSQL only); a constraint
    violation is raised as ``IntegrityError``. Returns the rows copied."""
    import asyncpg

    from ti_shared.statements import driver_of

    if not data:
        return 0
    driver = await driver_of(session)  # after what the session queued (ti_shared.statements), in its transaction
    try:
        # a memoryview: asyncpg takes bytes for a path
        status = await driver.copy_to_table(table.name, source=memoryview(data), columns=list(columns), schema_name=table.schema)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise sa.exc.IntegrityError(f"COPY {table.name}", None, exc) from exc
    return int(str(status).rsplit(" ", 1)[-1])
