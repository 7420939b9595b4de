"""Structural rules of the codebase, and the generated OpenAPI document."""

from __future__ import annotations

import ast
from pathlib import Path

from openapi_spec_validator import validate

from gateway.app import create_app
from gateway.config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400


def python_files() -> list[Path]:
    folders = ("gateway", "providers", "config", "tests", "bench", "scripts")
    return [p for folder in folders for p in (ROOT / folder).rglob("*.py")]


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (type-checking-only imports included: a cycle of types is
    still a cycle for a reader)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# (package, packages it must never import): the layering the packages' docstrings state.
FORBIDDEN = (
    ("providers", ("gateway",)),
    (
        "providers.http",
        ("providers.chat", "providers.music", "providers.synth", "providers.hosted"),
    ),
    ("providers.synth", ("providers.chat", "providers.music", "providers.http")),
    ("providers.chat", ("providers.music", "providers.synth")),
    (
        "providers.embeddings",
        ("providers.chat", "providers.music", "providers.synth", "providers.http"),
    ),
    # Image adapters talk HTTP like the music ones; what they share with chat or music
    # adapters (error bodies) lives in providers.shared_wire.
    ("providers.images", ("providers.chat", "providers.music", "providers.synth")),
    (
        "providers.hosted",
        (
            "providers.chat",
            "providers.music",
            "providers.synth",
            "providers.images",
            "providers.embeddings",
        ),
    ),
    (
        "gateway.http",
        ("gateway.endpoints", "gateway.policy", "gateway.stores", "gateway.tasks", "providers"),
    ),
    ("gateway.policy", ("gateway.endpoints", "gateway.tasks")),
    ("gateway.stores", ("gateway.endpoints", "gateway.policy", "gateway.http", "gateway.tasks")),
    ("gateway.contract", ("gateway.endpoints", "gateway.tasks", "gateway.stores")),
    ("gateway.config", ("gateway.endpoints", "gateway.policy", "gateway.http", "gateway.tasks")),
    ("gateway.tasks", ("gateway.endpoints",)),
    ("gateway.artifacts", ("gateway.endpoints", "gateway.policy", "gateway.tasks")),
)


def test_packages_import_only_what_their_layer_may() -> None:
    for folder in ("gateway", "providers"):
        for path in (ROOT / folder).rglob("*.py"):
            module = module_of(path)
            for package, never in FORBIDDEN:
                if not inside(module, package):
                    continue
                for name in imports_of(path):
                    bad = [n for n in never if inside(name, n)]
                    assert not bad, f"{module} imports {name}, which {package} must not"


def test_endpoints_never_import_each_other() -> None:
    for path in (ROOT / "gateway" / "endpoints").glob("*.py"):
        module = module_of(path)
        if module.endswith((".routes", ".endpoints")):
            continue  # the route table lists them all
        for name in imports_of(path):
            assert not (inside(name, "gateway.endpoints") and name != module), (module, name)


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for folder in ("gateway", "providers"):
        for path in (ROOT / folder).rglob("*.py"):
            graph[module_of(path)] = set()
    for folder in ("gateway", "providers"):
        for path in (ROOT / folder).rglob("*.py"):
            graph[module_of(path)] = {n for n in imports_of(path) if n in graph}
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = [*trail[trail.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


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

    spec = orjson.loads(app.operations.openapi_body)
    validate(spec)
    listed = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    public = {(r.method, r.path) for r in app.routes if r.public}
    assert listed == public
    assert ("POST", "/v1/chat/completions") in listed and ("GET", "/v1/health") in listed
    assert "security" not in spec["paths"]["/v1/health"]["get"]
