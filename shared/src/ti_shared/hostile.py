"""Crafted files for the tests that attack the platform: XLSX bombs and oversized sheets, CSV files
past the limits. Generated on demand (never committed as binaries) and small in memory however
large they claim or inflate to: the zip is written in chunks, so a 200 MiB bomb costs its ~200 KB."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable, Iterator

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
    '<sheets><sheet name="Feuil1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)


def _column(number: int) -> str:
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def sheet_rows(rows: Iterable[Iterable[str]], *, first_row: int = 1) -> Iterator[bytes]:
    """``<row>`` elements of inline-string cells, one chunk per row."""
    for r, row in enumerate(rows, start=first_row):
        cells = "".join(
            f'<c r="{_column(c)}{r}" t="inlineStr"><is><t>{_escape(v)}</t></is></c>' for c, v in enumerate(row, start=1)
        )
        yield f'<row r="{r}">{cells}</row>'.encode()


def workbook(
    sheet_data: Iterable[bytes] = (),
    *,
    dimension: str | None = None,
    prologue: bytes = b"",
    extra_parts: dict[str, Iterable[bytes]] | None = None,
    zip64: bool = True,
) -> bytes:
    """A one-sheet XLSX whose ``<sheetData>`` is ``sheet_data`` (streamed into the zip)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=zip64) as sheet:
            sheet.write(prologue or b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
            sheet.write(f'<worksheet xmlns="{_MAIN}">'.encode())
            if dimension:
                sheet.write(f'<dimension ref="{dimension}"/>'.encode())
            sheet.write(b"<sheetData>")
            for chunk in sheet_data:
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")
        for name, chunks in (extra_parts or {}).items():
            with archive.open(name, "w", force_zip64=zip64) as part:
                for chunk in chunks:
                    part.write(chunk)
    return buffer.getvalue()


def table_xlsx(rows: Iterable[Iterable[str]]) -> bytes:
    """An ordinary workbook holding ``rows`` (the first is the header)."""
    return workbook(sheet_rows(rows))


def far_cell_xlsx(ref: str = "XFD1048576") -> bytes:
    """One cell at ``ref`` (by default the sheet's last address: a reader allocating the dense grid
    from A1 would need 17 billion cells)."""
    row = ref.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    far = f'<row r="{row}"><c r="{ref}" t="inlineStr"><is><t>x</t></is></c></row>'.encode()
    return workbook([*sheet_rows([["a"]]), far])


def declared_dimension_xlsx(dimension: str = "A1:XFD1048576") -> bytes:
    """A small sheet declaring the whole grid as its dimension."""
    return workbook(sheet_rows([["a", "b"], ["1", "2"]]), dimension=dimension)


def cells_without_reference_xlsx(cells: int) -> bytes:
    """One row of ``cells`` cells without ``r`` attributes (their columns are implied)."""
    def chunks() -> Iterator[bytes]:
        yield b'<row r="1">'
        for _ in range(cells // 1000):
            yield b'<c t="inlineStr"><is><t>x</t></is></c>' * 1000
        yield b'<c t="inlineStr"><is><t>x</t></is></c>' * (cells % 1000)
        yield b"</row>"
    return workbook(chunks())


def many_rows_xlsx(rows: int, columns: int = 2) -> bytes:
    """A header then ``rows`` data rows."""
    def data() -> Iterator[list[str]]:
        yield [f"c{i}" for i in range(columns)]
        for n in range(rows):
            yield [str(n)] * columns
    return workbook(sheet_rows(data()))


def inflating_xlsx(inflated_mib: int = 80, part: str = "xl/worksheets/sheet1.xml") -> bytes:
    """A zip bomb: a part that inflates to ``inflated_mib`` MiB of whitespace (a few hundred KB sent)."""
    blank = b" " * (1024 * 1024)
    if part == "xl/worksheets/sheet1.xml":
        return workbook(blank for _ in range(inflated_mib))
    return workbook(sheet_rows([["a"], ["1"]]), extra_parts={part: (blank for _ in range(inflated_mib))})


def entity_expansion_xlsx() -> bytes:
    """The « billion laughs »: a DTD whose entities expand exponentially."""
    dtd = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode() for i in range(1, 10)
    ) + b"]>"
    return workbook([b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row>'], prologue=dtd)


def declare_size(data: bytes, part: str, size: int) -> bytes:
    """``data`` (a zip without zip64 entries) whose central directory declares ``size`` for ``part``."""
    patched = bytearray(data)
    entry = patched.find(b"PK\x01\x02")
    while entry != -1:  # a central directory entry: the uncompressed size at +24, the name at +46
        name_len = struct.unpack_from("<H", patched, entry + 28)[0]
        if bytes(patched[entry + 46 : entry + 46 + name_len]) == part.encode():
            struct.pack_into("<L", patched, entry + 24, size)
        entry = patched.find(b"PK\x01\x02", entry + 4)
    return bytes(patched)


def lying_size_xlsx() -> bytes:
    """A workbook whose sheet declares a smaller size than it inflates to."""
    return declare_size(workbook(sheet_rows([["a"]] * 200), zip64=False), "xl/worksheets/sheet1.xml", 100)


def lying_bomb_xlsx(inflated_mib: int = 80) -> bytes:
    """A zip bomb whose central directory declares a few bytes: only inflating it tells its size."""
    blank = b" " * (1024 * 1024)
    return declare_size(workbook((blank for _ in range(inflated_mib)), zip64=False), "xl/worksheets/sheet1.xml", 1000)


def zip_not_xlsx() -> bytes:
    """A zip that is not a workbook (an OpenDocument spreadsheet has no xl/workbook.xml)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def wide_csv(columns: int, rows: int = 1) -> bytes:
    """A header of ``columns`` distinct names and ``rows`` nearly empty lines."""
    header = ";".join(f"c{i}" for i in range(columns))
    return (header + "\n" + "x\n" * rows).encode()


def long_csv(rows: int) -> bytes:
    return ("a;b\n" + "1;2\n" * rows).encode()


def separators_csv(count: int) -> bytes:
    """One line of ``count`` separators (a reader splitting it would make ``count`` cells)."""
    return b"a;b\n" + b";" * count + b"\n"


#: the crafted corpus: name → (file, the statuses its refusal may have)
def corpus() -> dict[str, tuple[bytes, tuple[int, ...]]]:
    return {
        "far-cell": (far_cell_xlsx(), (413,)),
        "million-rows-down": (far_cell_xlsx("A1000000"), (413,)),
        "declared-whole-grid": (declared_dimension_xlsx(), (413,)),
        "zip-bomb-sheet": (inflating_xlsx(80), (413,)),
        "zip-bomb-shared-strings": (inflating_xlsx(80, "xl/sharedStrings.xml"), (413,)),
        "zip-bomb-declared-small": (lying_bomb_xlsx(80), (413,)),
        "billion-laughs": (entity_expansion_xlsx(), (422,)),
        "lying-sizes": (lying_size_xlsx(), (422,)),
        "zip-not-workbook": (zip_not_xlsx(), (422,)),
        "truncated-zip": (table_xlsx([["a"], ["1"]])[:300], (422,)),
        "wide-csv": (wide_csv(5000), (413,)),
        "csv-cells": (wide_csv(200, 6000), (413,)),
        "csv-rows": (long_csv(60_000), (413,)),
        "csv-separators": (separators_csv(5_000_000), (413,)),
        "csv-nul": (b"a;b\n1;\x002\n", (422,)),
        "xlsx-nul": (table_xlsx([["a", "b"], ["1", "x\x00y"]]), (422,)),
    }
