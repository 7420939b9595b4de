"""Reading a ``multipart/form-data`` body the way the fakes record it: text fields by name,
and per file part its bytes plus a summary (content type, size, SHA-256) to assert on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class FormFile:
    name: str
    filename: str | None
    content_type: str
    data: bytes

    def summary(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "size": len(self.data),
            "sha256": hashlib.sha256(self.data).hexdigest(),
        }


async def read_form(request: web.Request) -> tuple[dict[str, str], list[FormFile]]:
    """The text fields and the file parts of a form body, in the order they came."""
    fields: dict[str, str] = {}
    files: list[FormFile] = []
    for name, value in (await request.post()).items():
        if isinstance(value, web.FileField):
            files.append(FormFile(name, value.filename, value.content_type, value.file.read()))
        else:
            fields[name] = str(value)
    return fields, files
