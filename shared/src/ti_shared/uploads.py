"""The file of an import, read once the same way by every service: :func:`read_upload`.

A file comes as the request body (``text/csv``, XLSX…) or as the ``file`` part of a
``multipart/form-data`` upload (a browser form, ``curl -F file=@plan.xlsx``). Either way the same
rules: a size cap (413), the accepted media types (415; a part sent as ``application/octet-stream``
or without a type is told by its file name, then by its content), a declared charset we can read
(415), no empty file (422) and no NUL character in a text file (422: PostgreSQL text cannot hold it,
and a UTF-16 export is full of them). The bytes then go to ``ti_shared.tabular.read_table``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile

from ti_shared.http import CSV_TYPES, MULTIPART, XLSX_TYPE
from ti_shared.problems import Problem, field_problem
from ti_shared.tabular import XLSX_MAGIC

#: what an uploaded file's part may say it is: a spreadsheet export, or nothing precise
TABLE_TYPES: tuple[str, ...] = (*CSV_TYPES, XLSX_TYPE, "application/vnd.ms-excel", "text/plain", "application/octet-stream")
#: the charsets a CSV may declare (``ti_shared.tabular.decode_text`` reads UTF-8, Windows-1252 and Latin-1)
READABLE_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252", "iso-8859-15"})
#: a part without a precise type is told by its file name
_BY_EXTENSION = {".csv": "text/csv", ".txt": "text/csv", ".xlsx": XLSX_TYPE}
_VAGUE = ("", "application/octet-stream")


@dataclass(frozen=True)
class Upload:
    """An import's file: its bytes, its media type (the part's, in a multipart upload) and its name."""

    data: bytes
    media_type: str
    filename: str | None = None
    charset: str | None = None

    @property
    def is_xlsx(self) -> bool:
        return self.data.startswith(XLSX_MAGIC) or self.media_type == XLSX_TYPE


def _split(content_type: str) -> tuple[str, str | None]:
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return media.strip().lower(), charset


async def read_upload(
    request: Request, *, max_bytes: int, accept: Sequence[str] = TABLE_TYPES, field: str = "file"
) -> Upload:
    """The file of an import request (the rules are in the module's docstring)."""
    media, charset = _split(request.headers.get("content-type", ""))
    filename = None
    if media == MULTIPART:
        form = await request.form()
        part = form.get(field)
        if not isinstance(part, UploadFile):
            raise field_problem(["body", field], f"a multipart upload needs the file in a part named '{field}'")
        filename = part.filename
        media, charset = _split(part.content_type or "")
        if media in _VAGUE and filename:
            media = _BY_EXTENSION.get(_extension(filename), media)
        data = await part.read()
        await form.close()
    else:
        data = await request.body()
    upload = Upload(data, media, filename, charset)
    _check(upload, accept, max_bytes)
    return upload


def _extension(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot >= 0 else ""


def _check(upload: Upload, accept: Sequence[str], max_bytes: int) -> None:
    if len(upload.data) > max_bytes:
        raise Problem(413, f"The file is larger than {max_bytes} bytes")
    if upload.media_type not in accept and upload.media_type not in _VAGUE:
        raise Problem(415, f"A file of type '{upload.media_type}' is not accepted here; send one of: " + ", ".join(accept))
    if upload.charset is not None and not upload.is_xlsx and upload.charset not in READABLE_CHARSETS:
        raise Problem(415, f"The charset '{upload.charset}' is not read here; send UTF-8 or Latin-1 (Windows-1252)")
    if not upload.data.strip():
        raise field_problem(["body"], "the file is empty")
    if not upload.is_xlsx and b"\x00" in upload.data:
        raise Problem(
            422,
            "The file holds NUL characters (a UTF-16 export?): save it as CSV in UTF-8 or Latin-1",
            title="Invalid content",
        )
