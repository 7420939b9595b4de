"""Structural rules of the codebase, and the generated OpenAPI document."""

from __future__ import annotations

import ast
from pathlib import Path

from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 500


def python_files() -> list[Path]:
    folders = ("gateway", "providers", "config", "tests", "bench", "scripts")
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def test_providers_never_import_gateway() -> None:
    for path in (ROOT / "providers").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "gateway" or n.startswith("gateway.") for n in names), path


def test_no_module_over_the_size_limit_and_every_module_says_what_it_owns() -> None:
    for path in python_files():
        text = path.read_text()
        assert text.count("\n") <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} is too long"
        if path.name != "__init__.py" or text.strip():
            assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(ROOT)} has no docstring"


def test_no_base_http_middleware() -> None:
    for path in (ROOT / "gateway").rglob("*.py"):
        assert "BaseHTTPMiddleware" not in path.read_text()


def test_openapi_is_valid_and_lists_every_public_route() -> None:
    app = create_app(load_settings(env={}))
    import orjson

    spec = orjson.loads(app._openapi_body)
    validate(spec)
    listed = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    public = {(r.method, r.path) for r in app.routes if r.public}
    assert listed == public
    assert ("POST", "/v1/chat/completions") in listed and ("GET", "/v1/health") in listed
    assert "security" not in spec["paths"]["/v1/health"]["get"]
