"""Streaming ``multipart/form-data``: python-multipart's parser turned into events to await.

``FormReader`` collects the parser's synchronous callbacks (part begins with its name and file
name, data, part ends, body ends) into a list the endpoint drains after each chunk it feeds,
with every part's headers capped at ``MAX_PART_HEADER_BYTES``. ``boundary`` reads the boundary
of a ``multipart/form-data`` request (415 otherwise). Uploads stream their file part to disk
from these events; image edits read their (bounded) body whole with ``collect_form``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.contract.errors import GatewayError, invalid
from gateway.http.asgi import Request

MAX_PART_HEADER_BYTES = 16 * 1024


@dataclass
class Part:
    header_bytes: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: bytes | None = None
    filename: bytes | None = None
    field: bytes = b""
    value: bytes = b""


class FormReader:
    """Turns the parser's synchronous callbacks into a queue of events the endpoint awaits."""

    def __init__(self, boundary: bytes) -> None:
        self.events: list[tuple[str, bytes, Part]] = []
        self.part = Part()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _part_begin(self) -> None:
        self.part = Part()

    def _count_header(self, size: int) -> None:
        self.part.header_bytes += size
        if self.part.header_bytes > MAX_PART_HEADER_BYTES:
            raise GatewayError("payload_too_large", "A multipart part header is too large.")

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.part.field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self.part.value += data[start:end]

    def _header_end(self) -> None:
        self.part.headers[self.part.field.strip().lower()] = self.part.value.strip()
        self.part.field = self.part.value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        self.part.name = options.get(b"name")
        self.part.filename = options.get(b"filename")
        self.events.append(("begin", b"", self.part))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self.events.append(("data", data[start:end], self.part))

    def _part_end(self) -> None:
        self.events.append(("end", b"", self.part))

    def _end(self) -> None:
        self.events.append(("done", b"", self.part))


def boundary(request: Request, hint: str) -> bytes:
    """The request's multipart boundary; 415 (with ``hint`` on what to send) without one."""
    content_type = request.header(b"content-type") or b""
    media, options = parse_options_header(content_type)
    found = options.get(b"boundary")
    if media != b"multipart/form-data" or not found or len(found) > 200:
        raise GatewayError(
            "unsupported_media_type",
            f"Content-Type must be multipart/form-data with a boundary, {hint}.",
        )
    return found


@dataclass(frozen=True, slots=True)
class FilePart:
    name: str
    filename: str
    data: bytes


@dataclass
class Form:
    """A whole multipart body held in memory: its text fields (the last of a repeated name)
    and its file parts in order."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[FilePart] = field(default_factory=list)


MAX_FIELD_BYTES = 64 * 1024  # all text fields together


async def collect_form(
    request: Request, found: bytes, *, file_fields: frozenset[str], max_file_bytes: int
) -> Form:
    """Read a bounded multipart body into a ``Form``: parts named in ``file_fields`` are files
    (together at most ``max_file_bytes``: 413 the moment they pass it), any other part a text
    field (together at most ``MAX_FIELD_BYTES``). Every byte of the body counts: framing beyond
    the files and fields may add at most ``MAX_FIELD_BYTES`` more."""
    reader = FormReader(found)
    form = Form()
    body_limit = max_file_bytes + 2 * MAX_FIELD_BYTES
    received = file_bytes = field_bytes = 0
    chunks: list[bytes] = []
    done = False
    more = True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            request.ctx.disconnected = True
            raise GatewayError("invalid_request", "The client disconnected mid-upload.")
        more = message.get("more_body", False)
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > body_limit:
            raise GatewayError("payload_too_large", f"The body exceeds {body_limit} bytes.")
        try:
            reader.parser.write(chunk)
        except MultipartParseError:
            raise invalid([{"field": "body", "issue": "not a valid multipart body"}]) from None
        for kind, data, part in reader.events:
            name = (part.name or b"").decode("utf-8", "replace")
            if kind == "begin":
                chunks = []
            elif kind == "data":
                if name in file_fields:
                    file_bytes += len(data)
                    if file_bytes > max_file_bytes:
                        raise GatewayError(
                            "payload_too_large", f"The files exceed {max_file_bytes} bytes."
                        )
                else:
                    field_bytes += len(data)
                    if field_bytes > MAX_FIELD_BYTES:
                        raise GatewayError("payload_too_large", "The form fields are too large.")
                chunks.append(data)
            elif kind == "end":
                value = b"".join(chunks)
                if name in file_fields:
                    filename = (part.filename or b"").decode("utf-8", "replace")
                    form.files.append(FilePart(name, filename, value))
                else:
                    form.fields[name] = value.decode("utf-8", "replace")
            elif kind == "done":
                done = True
        reader.events.clear()
    if not done:
        raise invalid([{"field": "body", "issue": "the multipart body is incomplete"}])
    return form
