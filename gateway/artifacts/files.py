"""Artifacts: stored files (uploads and generated audio) with their owner-checked records.

``ArtifactFiles`` owns the bytes on a local directory: a file is written under a temporary name,
hashed as it goes, and renamed into place only when complete, so a reader never sees half a file
and an aborted upload leaves nothing behind. ``Artifacts`` joins the files to the index (the
records), hides another key's artifacts as ``not_found`` and sweeps expired ones.

Disk I/O runs in worker threads in blocks of ``BLOCK_BYTES`` so a 100 MB upload never stalls the
event loop and never sits in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

import structlog

from gateway.config.settings import StorageSettings
from gateway.contract.errors import GatewayError
from gateway.contract.ids import ARTIFACT_ID, new_artifact_id
from gateway.stores.base import Artifact, ArtifactIndex

BLOCK_BYTES = 1024 * 1024
ORPHAN_AGE_S = 3600.0  # an unrecorded file this old is no upload or download still in flight
_TEMP_PREFIX = ".partial-"
_log = structlog.get_logger("beatra.artifacts")


class PendingFile:
    """A file being written: counted and hashed; ``commit`` publishes it, ``discard`` drops it."""

    def __init__(self, artifact_id: str, final: Path) -> None:
        self.artifact_id = artifact_id
        self._final = final
        self._temp = final.with_name(f"{_TEMP_PREFIX}{final.name}.{secrets.token_hex(4)}")
        self._handle: BinaryIO = self._temp.open("xb")
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self.size = 0
        self._closed = False

    async def write(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)
        self._buffer += data
        if len(self._buffer) >= BLOCK_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            block = bytes(self._buffer)
            self._buffer.clear()
            await asyncio.to_thread(self._handle.write, block)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    async def commit(self) -> None:
        await self._flush()
        await asyncio.to_thread(self._finish)
        self._closed = True

    def _finish(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temp, self._final)

    def discard(self) -> None:
        if not self._closed:
            self._closed = True
            self._handle.close()
            self._temp.unlink(missing_ok=True)


class ArtifactFiles:
    """The bytes of artifacts, one file per id in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def leftovers(self, older_than: float) -> list[Path]:
        """Temporary files, and published files, last written before ``older_than`` (Unix
        time). Age matters: replicas sharing the directory may be writing right now."""
        found: list[Path] = []
        for entry in self.root.iterdir():
            if entry.name.startswith(_TEMP_PREFIX) or ARTIFACT_ID.fullmatch(entry.name):
                try:
                    if entry.stat().st_mtime < older_than:
                        found.append(entry)
                except FileNotFoundError:
                    continue
        return found

    def path(self, artifact_id: str) -> Path:
        # The id is checked against its exact shape before it touches the file system, so no
        # id can name a path outside the directory.
        if not ARTIFACT_ID.fullmatch(artifact_id):
            raise ValueError("not an artifact id")
        return self.root / artifact_id

    def create(self, artifact_id: str) -> PendingFile:
        return PendingFile(artifact_id, self.path(artifact_id))

    async def read(self, artifact_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start``..``end`` (inclusive) of the file, in blocks."""
        handle = await asyncio.to_thread(self.path(artifact_id).open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = end - start + 1
            while left > 0:
                block = await asyncio.to_thread(handle.read, min(BLOCK_BYTES, left))
                if not block:
                    return
                left -= len(block)
                yield block
        finally:
            handle.close()

    def delete(self, artifact_id: str) -> None:
        self.path(artifact_id).unlink(missing_ok=True)


class Artifacts:
    """Records and files together; every lookup is scoped to the key that owns the artifact."""

    def __init__(
        self,
        index: ArtifactIndex,
        files: ArtifactFiles,
        settings: StorageSettings,
        wall_clock: Callable[[], float],
    ) -> None:
        self.index = index
        self.files = files
        self.settings = settings
        self._wall_clock = wall_clock

    def now(self) -> int:
        return int(self._wall_clock())

    async def collect_orphans(self) -> None:
        """Delete files a crash or a restart left without a record (at start, and each sweep).

        With the in-memory index every file of a previous run is such an orphan (its record
        died with the process); with a shared index only files nobody recorded go.
        """
        self.files.root.mkdir(parents=True, exist_ok=True)
        cutoff = self._wall_clock() - ORPHAN_AGE_S
        removed = 0
        for entry in await asyncio.to_thread(self.files.leftovers, cutoff):
            if ARTIFACT_ID.fullmatch(entry.name) and await self.index.get(entry.name) is not None:
                continue
            entry.unlink(missing_ok=True)
            removed += 1
        if removed:
            _log.info("artifact_orphans_removed", removed=removed)

    async def lookup(self, artifact_id: str, owner: str) -> Artifact:
        """The owner's live artifact; anything else (another key's, expired, malformed id) is
        ``not_found``, so ids reveal nothing about other tenants."""
        record = None
        if ARTIFACT_ID.fullmatch(artifact_id):
            record = await self.index.get(artifact_id)
        if record is None or record.owner != owner or record.expires_at <= self.now():
            raise GatewayError("not_found", "No such artifact.")
        return record

    def begin(self) -> PendingFile:
        return self.files.create(new_artifact_id())

    async def publish(
        self,
        pending: PendingFile,
        *,
        owner: str,
        kind: str,
        filename: str,
        content_type: str,
        duration_seconds: float | None = None,
        task_id: str | None = None,
    ) -> Artifact:
        """Commit the file, then record it (a record never points at a missing file)."""
        retention = (
            self.settings.upload_retention_s
            if kind == "upload"
            else self.settings.output_retention_s
        )
        now = self.now()
        await pending.commit()
        record = Artifact(
            artifact_id=pending.artifact_id,
            owner=owner,
            kind=kind,
            filename=filename,
            content_type=content_type,
            bytes=pending.size,
            sha256=pending.sha256,
            created_at=now,
            expires_at=now + int(retention),
            duration_seconds=duration_seconds,
            task_id=task_id,
        )
        try:
            await self.index.put(record)
        except BaseException:
            self.files.delete(record.artifact_id)
            raise
        return record

    async def keep_image(
        self, data: bytes, *, owner: str, kind: str, extension: str, content_type: str
    ) -> Artifact:
        """An image already in memory, kept as an artifact (``image-{id}.{extension}``)."""
        pending = self.begin()
        try:
            await pending.write(data)
            return await self.publish(
                pending,
                owner=owner,
                kind=kind,
                filename=f"image-{pending.artifact_id}.{extension}",
                content_type=content_type,
            )
        finally:
            pending.discard()  # a no-op once published

    async def read_whole(self, record: Artifact) -> bytes:
        """An artifact's bytes in memory (for files the caller has already bounded in size)."""
        return b"".join([b async for b in self.files.read(record.artifact_id, 0, record.bytes - 1)])

    async def remove(self, artifact_id: str) -> None:
        await self.index.delete(artifact_id)
        self.files.delete(artifact_id)

    async def sweep(self) -> int:
        """Delete every expired artifact, record and file; how many went."""
        removed = 0
        while True:
            batch = await self.index.expired(self.now(), 500)
            if not batch:
                break
            for record in batch:
                await self.remove(record.artifact_id)
            removed += len(batch)
        if removed:
            _log.info("artifacts_swept", removed=removed)
        await self.collect_orphans()
        return removed


def public_artifact(record: Artifact) -> dict[str, object]:
    """The artifact as the API shows it."""
    body: dict[str, object] = {
        "artifact_id": record.artifact_id,
        "object": "artifact",
        "kind": record.kind,
        "filename": record.filename,
        "content_type": record.content_type,
        "bytes": record.bytes,
        "sha256": record.sha256,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
    }
    if record.duration_seconds is not None:
        body["duration_seconds"] = record.duration_seconds
    if record.task_id is not None:
        body["task_id"] = record.task_id
    return body
