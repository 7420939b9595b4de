"""The user's API reference, ``docs/api.md``, names every route the gateway serves and every
error code it can answer with: a route or code added to the code without a word in the
reference fails here."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from gateway.app import create_app
from gateway.config.settings import load_settings
from gateway.contract.errors import ERROR_CODES

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "api.md").read_text()


def test_every_route_of_the_openapi_document_is_described() -> None:
    app = create_app(load_settings(env={}))
    spec = orjson.loads(app.operations.openapi_body)
    missing = [
        f"{method.upper()} {path}"
        for path, operations in spec["paths"].items()
        for method in operations
        if f"{method.upper()} {path}" not in DOC
    ]
    assert missing == []


def test_every_error_code_is_in_the_error_table() -> None:
    # A row of the error table: | `code` | status | ...
    rows = {
        match.group(1): int(match.group(2))
        for match in re.finditer(r"^\|\s*`([a-z_]+)`\s*\|\s*(\d{3})\s*\|", DOC, re.MULTILINE)
    }
    assert {code: rows.get(code) for code in ERROR_CODES} == {
        code: error.status for code, error in ERROR_CODES.items()
    }


def test_nothing_in_the_repository_reaches_outside_it() -> None:
    """A clone is all a user has: no file may send them to a folder beside the checkout."""
    outside = "../" + "shared"  # spelled in two parts so this file does not find itself
    skipped = {".git", ".venv", ".tools", "__pycache__", ".mypy_cache", ".ruff_cache"}
    offenders = []
    for path in ROOT.rglob("*"):
        if skipped.intersection(path.relative_to(ROOT).parts) or not path.is_file():
            continue
        if path.suffix not in {".py", ".md", ".toml", ".yaml", ".yml", ".txt", ".conf", ""}:
            continue
        text = path.read_text(errors="replace")
        if outside in text or "CONTRACT" + ".md" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
