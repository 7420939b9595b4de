"""``GET /llms.txt`` and ``GET /openapi.yaml``: discovery documents made from the route table."""

from __future__ import annotations

import re

import httpx
import yaml

from gateway.app import create_app
from gateway.config.settings import load_settings
from gateway.contract.llms import build_llms_txt
from gateway.http.router import Route
from tests.fakes.server import UvicornServer

LINK = re.compile(r"^- \[(?P<text>[^\]]+)\]\((?P<url>[^)\s]+)\): (?P<about>\S.*)$")


async def _nothing(_request: object) -> None:
    return None


def test_llms_txt_maps_every_route_in_the_llmstxt_format(gateway: UvicornServer) -> None:
    response = httpx.get(gateway.url + "/llms.txt")  # no key
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    lines = response.text.splitlines()
    assert lines[0].startswith("# ") and lines[2].startswith("> ")
    sections = [line[3:] for line in lines if line.startswith("## ")]
    assert sections[0] == "Docs" and sections[-1] == "Optional"
    links = [LINK.match(line) for line in lines if line.startswith("- ")]
    assert all(links), lines
    listed = {match["text"]: (match["url"], match["about"]) for match in links if match}
    routes = create_app(load_settings(env={})).routes
    assert listed == {f"{r.method} {r.path}": (r.path, r.summary) for r in routes}
    assert "POST /v1/embeddings" in listed and "GET /openapi.yaml" in listed


def test_a_new_route_appears_in_llms_txt_under_its_tag() -> None:
    routes = create_app(load_settings(env={})).routes
    added = Route("POST", "/v1/widgets", _nothing, "Make a widget", "Widgets")
    before = build_llms_txt(routes)
    after = build_llms_txt([*routes, added])
    assert "/v1/widgets" not in before
    section = after.split("## Widgets\n\n", 1)[1].split("\n\n", 1)[0]
    assert section == "- [POST /v1/widgets](/v1/widgets): Make a widget"
    assert after.index("## Widgets") < after.index("## Optional")


def test_openapi_yaml_is_the_json_document(gateway: UvicornServer) -> None:
    as_yaml = httpx.get(gateway.url + "/openapi.yaml")  # no key
    as_json = httpx.get(gateway.url + "/openapi.json")
    assert as_yaml.status_code == as_json.status_code == 200
    assert as_yaml.headers["content-type"] == "application/yaml"
    document = yaml.safe_load(as_yaml.text)
    assert document == as_json.json()
    assert "/v1/embeddings" in document["paths"]
    assert not as_yaml.text.lstrip().startswith("{")  # YAML's block style, not JSON in disguise
