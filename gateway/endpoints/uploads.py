"""``POST /v1/uploads``: one audio or image file, multipart, streamed to disk with a byte counter.

The body is parsed as it arrives (python-multipart's streaming parser) and the file part is
written block by block to a temporary file, so a 100 MB upload never sits in memory. Two
counters bound it: the file part may be at most the upload limit, and the whole body (preamble,
boundaries, part headers, other parts, epilogue) at most the limit plus
``MULTIPART_SLACK_BYTES``. Either is refused with 413 the moment it passes (or at once, from a
declared ``Content-Length``), bytes that are neither audio nor PNG, JPEG or WebP with 415 as soon
as the first bytes are in, an image whose header declares more than ``MAX_INPUT_PIXELS`` with 413
as soon as its header is in (a decompression bomb is never decoded, here or later), and on every
failure the temporary file is removed: nothing half-written is left behind.

``Idempotency-Key`` applies: the fingerprint is the file's sha256 and name, known once the bytes
are in, so a replay still receives the body and then answers with the stored response.
"""

from __future__ import annotations

import hashlib
import re

from python_multipart.exceptions import MultipartParseError

from gateway.artifacts.files import Artifacts, PendingFile, public_artifact
from gateway.artifacts.media import (
    IMAGE_HEAD_BYTES,
    SNIFF_BYTES,
    check_pixels,
    image_dimensions,
    sniff_audio,
)
from gateway.config.settings import KeySettings
from gateway.contract.errors import GatewayError, invalid
from gateway.http.asgi import Request
from gateway.http.multipart import FormReader, Part, boundary
from gateway.metrics import Metrics
from gateway.policy.auth import KeyRing
from gateway.policy.create import CreateEndpoint, Prepared
from gateway.policy.idempotency import Idempotency, Ticket
from providers.images.base import sniff_image

FILE_FIELD = b"file"
MAX_FORM_FIELD_BYTES = 64 * 1024  # other (text) fields are accepted and ignored, within this
# What the whole body may carry beyond the file: boundaries, part headers and small fields
# (about 200 bytes from any SDK). The parser skips bytes outside the parts (an epilogue, blank
# lines before the first boundary), so only this body counter bounds them.
MULTIPART_SLACK_BYTES = 64 * 1024
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\\"]")
MAX_FILENAME_CHARS = 255


def clean_filename(raw: bytes) -> str:
    """The client's file name as we keep and show it: no path, no control characters."""
    name = raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    return name[:MAX_FILENAME_CHARS] or "upload"


def _boundary(request: Request) -> bytes:
    return boundary(request, "the file in field 'file'")


class _Upload:
    """One upload in progress: the file part goes to ``pending``; the rest is checked."""

    def __init__(self, artifacts: Artifacts, limit: int) -> None:
        self._artifacts = artifacts
        self._limit = limit
        self.pending: PendingFile | None = None
        self.filename = "upload"
        self.content_type: str | None = None
        self._head = b""
        self._in_file = False
        self._files_seen = 0
        self._field_bytes = 0
        self._sized = False  # an image: its header's dimensions were checked
        self.done = False

    async def handle(self, kind: str, data: bytes, part: Part) -> None:
        if kind == "begin":
            self._in_file = part.name == FILE_FIELD
            if self._in_file:
                self._files_seen += 1
                if self._files_seen > 1:
                    raise invalid([{"field": "file", "issue": "exactly one file per upload"}])
                self.filename = clean_filename(part.filename or b"")
                self.pending = self._artifacts.begin()
        elif kind == "data":
            if self._in_file:
                await self._file_data(data)
            else:
                self._field_bytes += len(data)
                if self._field_bytes > MAX_FORM_FIELD_BYTES:
                    raise GatewayError("payload_too_large", "The form fields are too large.")
        elif kind == "end":
            if self._in_file:
                self._sniff(final=True)
            self._in_file = False
        elif kind == "done":
            self.done = True

    async def _file_data(self, data: bytes) -> None:
        assert self.pending is not None
        if self.pending.size + len(data) > self._limit:
            raise GatewayError(
                "payload_too_large", f"The file exceeds the upload limit of {self._limit} bytes."
            )
        if self.content_type is None or not self._sized:
            self._head += data[: IMAGE_HEAD_BYTES - len(self._head)]
            self._sniff(final=False)
        await self.pending.write(data)

    def _sniff(self, *, final: bool) -> None:
        if self.content_type is None:
            if len(self._head) < SNIFF_BYTES and not final:
                return
            if not self._head:
                raise invalid([{"field": "file", "issue": "the file is empty"}])
            self.content_type = sniff_audio(self._head) or sniff_image(self._head)
            self._sized = not self.content_type or not self.content_type.startswith("image/")
            if self.content_type is None:
                raise GatewayError(
                    "unsupported_media_type",
                    "The file is not a supported audio format (WAV, MP3, FLAC, OGG, AIFF,"
                    " M4A/AAC) or image format (PNG, JPEG, WebP).",
                )
        if not self._sized:
            self._check_pixels(final)

    def _check_pixels(self, final: bool) -> None:
        """An image's declared size, refused over the pixel limit before it is decoded."""
        assert self.content_type is not None
        size = image_dimensions(self._head, self.content_type)
        if size is None:
            if final or len(self._head) >= IMAGE_HEAD_BYTES:
                raise invalid([{"field": "file", "issue": "the image's header is unreadable"}])
            return
        self._sized = True
        check_pixels(size, "file")


class PreparedUpload(Prepared):
    """An upload whose whole body is in: the file waiting on disk, not yet published."""

    __slots__ = ("content_type", "filename", "pending")

    def __init__(self, pending: PendingFile, content_type: str, filename: str) -> None:
        self.pending = pending
        self.content_type = content_type
        self.filename = filename

    def fingerprint(self) -> str:
        # Known only now that every byte is in: the file's digest and its cleaned name.
        return hashlib.sha256(
            f"POST /v1/uploads\n{self.pending.sha256}\n{self.filename}".encode()
        ).hexdigest()

    def before_replay(self) -> None:
        self.pending.discard()  # the duplicate's file goes before the kept answer is sent

    def settle(self) -> None:
        self.pending.discard()  # a no-op once published


class UploadEndpoint(CreateEndpoint[PreparedUpload]):
    def __init__(
        self,
        keys: KeyRing,
        artifacts: Artifacts,
        idempotency: Idempotency,
        limit: int,
        metrics: Metrics,
    ) -> None:
        super().__init__(keys, idempotency)
        self._metrics = metrics
        self._artifacts = artifacts
        self._limit = limit
        self._body_limit = limit + MULTIPART_SLACK_BYTES

    def _body_too_large(self) -> GatewayError:
        return GatewayError(
            "payload_too_large",
            f"The request body exceeds the upload limit of {self._limit} bytes"
            f" plus {MULTIPART_SLACK_BYTES} for the multipart framing.",
        )

    async def prepare(self, request: Request, key: KeySettings) -> PreparedUpload:
        boundary = _boundary(request)
        declared = request.header(b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            # More than 18 digits is over any limit; int() refuses over 4300 of them.
            and (len(declared) > 18 or int(declared) > self._body_limit)
        ):
            raise self._body_too_large()
        upload = _Upload(self._artifacts, self._limit)
        try:
            await self._receive(request, boundary, upload)
            if upload.pending is None or upload.content_type is None:
                raise invalid([{"field": "file", "issue": "a file part named 'file' is required"}])
        except BaseException:
            if upload.pending is not None:
                upload.pending.discard()
            raise
        return PreparedUpload(upload.pending, upload.content_type, upload.filename)

    async def run(
        self, request: Request, key: KeySettings, prepared: PreparedUpload, ticket: Ticket | None
    ) -> None:
        record = await self._artifacts.publish(
            prepared.pending,
            owner=key.name,
            kind="upload",
            filename=prepared.filename,
            content_type=prepared.content_type,
        )
        self._metrics.artifact_bytes.labels("upload").inc(record.bytes)
        await self._idempotency.respond_and_keep(request, ticket, 200, public_artifact(record))

    async def _receive(self, request: Request, boundary: bytes, upload: _Upload) -> None:
        reader = FormReader(boundary)
        received = 0
        more = True
        while more:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                request.ctx.disconnected = True
                raise GatewayError("invalid_request", "The client disconnected mid-upload.")
            more = message.get("more_body", False)
            chunk: bytes = message.get("body", b"")
            # Every byte counts, checked before parsing: the parser silently drops bytes around
            # the parts, and a body must not go on after its file is complete.
            received += len(chunk)
            if received > self._body_limit:
                raise self._body_too_large()
            try:
                reader.parser.write(chunk)
            except MultipartParseError:
                raise invalid([{"field": "body", "issue": "not a valid multipart body"}]) from None
            for kind, data, part in reader.events:
                await upload.handle(kind, data, part)
            reader.events.clear()
        if not upload.done:
            raise invalid([{"field": "body", "issue": "the multipart body is incomplete"}])
