"""POST and DELETE /api/documents: admins add, replace and delete documents; a background build indexes them."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from fastapi import APIRouter, HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from ..access import Reader
from ..builds import Builds
from ..documents import printable
from ..service import Assistant
from .uploads import UploadError, check_name, delete_file, max_file_bytes, over_limit, store_files

log = logging.getLogger(__name__)

MAX_FILES = 20  # per request: with the size limit, what one request may spool to the temporary folder
_MAX_FIELD_BYTES = 4096  # the folder and replace fields
_FIELDS = ("folder", "replace")
_FLAGS = {"true": True, "1": True, "on": True, "yes": True, "false": False, "0": False, "off": False, "no": False}
_NAMED = 5  # files named in a build's reason
UPLOAD_BODY = {  # the multipart body, for /api/docs: the route reads it itself, as it streams in
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "folder": {"type": "string", "default": "", "description": "relative to the corpus"},
                        "replace": {"type": "boolean", "default": False, "description": "replace files of the name"},
                    },
                }
            }
        },
    }
}


def documents_router(assistant: Assistant, signed: Any) -> APIRouter:
    """The routes that change the corpus; `signed`: the API's dependency that gives the request's Reader."""
    router = APIRouter()

    @router.post(
        "/documents",
        status_code=201,
        summary="Add or replace documents (admins): multipart `files`, `folder`, `replace`",
        openapi_extra=UPLOAD_BODY,
    )
    async def add_documents(request: Request, reader: Reader = signed) -> dict:
        require_admin(assistant, reader, "add documents")  # before a byte of the body is read
        limit = max_file_bytes(assistant.settings)
        with refusals():
            form = await read_form(request, limit)
            try:
                stored = await run_in_threadpool(
                    store_files, assistant.settings.corpus, form.folder, form.files, form.replace, limit
                )
            finally:
                form.close()
        return {"stored": stored, "build": request_build(request.app, f"{reader} added {_names(stored)}")}

    @router.delete("/documents/{path:path}", summary="Delete one document of the corpus (admins)")
    def delete_document(path: str, request: Request, reader: Reader = signed) -> dict:
        require_admin(assistant, reader, "delete documents")
        with refusals():
            deleted = delete_file(assistant.settings.corpus, path)
        return {"deleted": deleted, "build": request_build(request.app, f"{reader} deleted {printable(deleted)}")}

    return router


def require_admin(assistant: Assistant, reader: Reader, what: str) -> None:
    if not assistant.access.policy().is_admin(reader):
        raise HTTPException(
            403,
            f"only admins may {what}, and {reader} is not one — ask an admin (the admins of the ASSISTANT_ACCESS "
            "file, or the service token)",
        )


def builds_of(app: Any) -> Builds | None:
    """The server's background builds: create_server keeps them as app.state.builds, on the API's app and on the
    chat's Gradio app; None for an app made without them (as in tests)."""
    return getattr(getattr(app, "state", None), "builds", None)


def request_build(app: Any, reason: str) -> str:
    """Ask the server's background builds to index the change. An app without them starts none: the next build
    (`assistant build`, or a server's start) picks the change up."""
    builds = builds_of(app)
    if builds is None:
        log.info("no build started (%s): this server runs no background builds", reason)
        return "not started: run `assistant build` to index the change"
    builds.request(reason)
    return "requested"


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """An UploadError as the HTTP error it names: JSON {"detail": "..."} like every error of the API."""
    try:
        yield
    except UploadError as err:
        raise HTTPException(err.status, str(err)) from None


@dataclass
class Form:
    """The fields and files of one upload request; each file in an anonymous temporary file (none is left
    behind, even by a crash), its bytes counted as they came."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, BinaryIO]] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return self.fields.get("folder", "")

    @property
    def replace(self) -> bool:
        value = self.fields.get("replace", "false")
        if value.lower() not in _FLAGS:
            raise UploadError(422, f"replace must be true or false, not {value[:20]!r}")
        return _FLAGS[value.lower()]

    def close(self) -> None:
        for _, stream in self.files:
            stream.close()


async def read_form(request: Request, max_bytes: int) -> Form:
    """The multipart body, read as it streams in: a file is refused as soon as its name or type is wrong (from its
    headers) or its bytes pass `max_bytes`, without reading the rest; the whole body stops at MAX_FILES files."""
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(422, "send the files as multipart/form-data (curl -F files=@report.pdf)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FILES * (max_bytes + _MAX_FIELD_BYTES) + _MAX_FIELD_BYTES:
        raise UploadError(413, f"the request is larger than {MAX_FILES} files of the size limit — send fewer files")
    parts = _Parts(max_bytes)
    parser = MultipartParser(params[b"boundary"], parts.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await run_in_threadpool(parts.flush)  # file writes off the event loop, as Starlette's own parser does
        parser.finalize()
        await run_in_threadpool(parts.flush)
    except BaseException:
        parts.form.close()
        raise
    for _, stream in parts.form.files:
        stream.seek(0)
    return parts.form


class _Parts:
    """python-multipart's callbacks for one body: they fill a Form, and refuse a part as soon as it is wrong."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.form = Form()
        self._header = (b"", b"")
        self._disposition = b""
        self._name = ""
        self._file: BinaryIO | None = None
        self._size = 0
        self._value = bytearray()
        self._pending: list[tuple[BinaryIO, bytes]] = []

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda data, start, end: self._add_header(data[start:end], b""),
            "on_header_value": lambda data, start, end: self._add_header(b"", data[start:end]),
            "on_header_end": self._end_header,
            "on_headers_finished": self._start_part,
            "on_part_data": self._data,
            "on_part_end": self._end_part,
        }

    def flush(self) -> None:
        for stream, data in self._pending:
            stream.write(data)
        self._pending.clear()

    def _begin(self) -> None:
        self._disposition, self._file, self._size, self._value = b"", None, 0, bytearray()

    def _add_header(self, name: bytes, value: bytes) -> None:
        self._header = (self._header[0] + name, self._header[1] + value)

    def _end_header(self) -> None:
        if self._header[0].lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = (b"", b"")

    def _start_part(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = _text(options.get(b"name", b""), "a field's name")
        if b"filename" not in options:
            if self._name not in _FIELDS or self._name in self.form.fields:
                raise UploadError(422, f"unexpected field {self._name!r} — send `files`, and once each: {_FIELDS}")
            return
        if self._name != "files":
            raise UploadError(422, f"a file came in the field {self._name!r} — send files in `files` fields")
        if len(self.form.files) == MAX_FILES:
            raise UploadError(413, f"more than {MAX_FILES} files in one request — send them in several")
        name = _text(options[b"filename"], "a file's name")
        check_name(name)  # a wrong name or type is refused before its bytes are read
        self._file = tempfile.TemporaryFile()  # closed by Form.close; unlinked from the start
        self.form.files.append((name, self._file))

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._file is None:
            if self._size > _MAX_FIELD_BYTES:
                raise UploadError(422, f"field {self._name!r} is longer than {_MAX_FIELD_BYTES} bytes")
            self._value += data[start:end]
            return
        if self._size > self.max_bytes:
            raise over_limit(self.form.files[-1][0], self.max_bytes)
        self._pending.append((self._file, data[start:end]))

    def _end_part(self) -> None:
        if self._file is None:
            self.form.fields[self._name] = _text(bytes(self._value), f"field {self._name!r}")


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise UploadError(422, f"{what} is not valid UTF-8 — rename it") from None


def _names(stored: list[str]) -> str:
    shown = ", ".join(printable(path) for path in stored[:_NAMED])
    return shown + (f" and {len(stored) - _NAMED} more" if len(stored) > _NAMED else "")
