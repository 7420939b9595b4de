"""``GET /llms.txt``: a map of the gateway for language models, generated from the route table.

The llmstxt.org format: a ``# title``, a ``> summary``, a few lines of what every route shares,
then ``## sections`` of markdown links, each with its one-line description. Every route of the
table is listed under its tag, in table order: the documents first (``Docs``), the API's routes
next, and the operator's (``Operations``) last under ``Optional``, the section the format lets a
reader skip. A route added to the table appears here with its summary, without a word more.
Links are paths on this server (a ``Host`` header is the client's to choose, so it is not used
to make absolute URLs).
"""

from __future__ import annotations

from gateway.http.router import Route

DOCS_TAG = "Docs"
OPERATIONS_TAG = "Operations"
TITLE = "beatra gateway"
SUMMARY = (
    "A self-hosted, OpenAI-compatible gateway in front of LLM and music-generation providers: "
    "point an OpenAI SDK's base_url at this server's /v1 and change nothing else."
)
NOTES = (
    "Every /v1 route but /v1/health needs `Authorization: Bearer <key>`. Bodies are JSON "
    "(uploads: multipart/form-data). Create-style POSTs take an optional `Idempotency-Key`. "
    'Every error is one JSON envelope: `{"error": {"code", "message", "type", '
    '"retryable", "request_id", "details", "param"}}`; every response carries `X-Request-Id`. '
    "Request and response schemas are in the OpenAPI document below."
)


def build_llms_txt(routes: list[Route]) -> str:
    sections: dict[str, list[Route]] = {DOCS_TAG: []}
    for route in routes:
        sections.setdefault(route.tag, []).append(route)
    optional = sections.pop(OPERATIONS_TAG, [])
    lines = [f"# {TITLE}", "", f"> {SUMMARY}", "", NOTES]
    for title, members in [*sections.items(), ("Optional", optional)]:
        if not members:
            continue
        lines += ["", f"## {title}", ""]
        for route in members:
            lines.append(f"- [{route.method} {route.path}]({route.path}): {route.summary}")
    return "\n".join(lines) + "\n"
