"""Validation of image requests (generations JSON, edits form fields), then the models' abilities.

``validate_image`` checks the fields on their own (types, ranges, unknown fields; one
``details`` entry per problem), whatever carried them: a JSON body, or an edit's form fields
read as strings (``from_form`` converts those first, naming the field it cannot read).
``supporting`` keeps the plan's deployments whose adapter can do what was asked (size, format,
``n``, an edit, a mask, a transparent background): a request none can serve is a 400 naming the
field, never a silent ignore.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.contract.errors import MAX_LISTED_ISSUES, invalid
from gateway.policy.routing import Candidate
from providers.base import as_int
from providers.images.base import FORMATS, ImagesAdapter

MAX_PROMPT_CHARS = 32000
MAX_N = 10
MAX_SEED = 2**32 - 1
QUALITIES = ("auto", "low", "medium", "high", "standard", "hd")
BACKGROUNDS = ("auto", "opaque", "transparent")
RESPONSE_FORMATS = ("b64_json", "url")
MODERATIONS = ("auto", "low")
STYLES = ("vivid", "natural")
DEFAULT_RESPONSE_FORMAT = "b64_json"
ENUMS: dict[str, tuple[str, ...]] = {
    "quality": QUALITIES,
    "background": BACKGROUNDS,
    "response_format": RESPONSE_FORMATS,
    "output_format": FORMATS,
    "moderation": MODERATIONS,
    "style": STYLES,
}
FIELDS = frozenset(
    {"model", "prompt", "n", "size", "seed", "output_compression", "user", "stream"}
    | {"partial_images", "strength", "image_artifact_id"}
    | set(ENUMS)
)
INTEGERS = ("n", "seed", "output_compression", "partial_images")


@dataclass(frozen=True, slots=True)
class ImageAsk:
    """A validated image request (generation, or edit when ``edit`` is set)."""

    model: str
    prompt: str
    n: int
    size: str
    quality: str
    background: str
    output_format: str
    response_format: str
    output_compression: int | None
    seed: int | None
    strength: float | None
    image_artifact_id: str | None
    edit: bool

    @property
    def capability(self) -> str:
        return "image.edit" if self.edit else "image.text"

    @property
    def kind(self) -> str:
        """The metric's and the task's word for it."""
        return "edit" if self.edit else "generation"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _form_number(text: str, integer: bool) -> int | float | str:
    try:
        value = float(text)
    except ValueError:
        return text
    if integer:
        return int(value) if value.is_integer() and abs(value) < 2**63 else text
    return value


def from_form(fields: Mapping[str, str]) -> dict[str, Any]:
    """An edit's text fields as the JSON values ``validate_image`` reads: numbers parsed, the
    text ``null`` as a null (but in ``prompt``), ``true``/``false`` as booleans for ``stream``;
    an unreadable value is left as text, which the validator refuses naming the field."""
    body: dict[str, Any] = {}
    for name, text in fields.items():
        if text == "null" and name != "prompt":
            body[name] = None
        elif name in INTEGERS or name == "strength":
            body[name] = _form_number(text, name != "strength")
        elif name == "stream" and text in ("true", "false"):
            body[name] = text == "true"
        else:
            body[name] = text
    return body


def validate_image(body: dict[str, Any], *, edit: bool) -> ImageAsk:
    problems: list[dict[str, str]] = []

    def bad(field: str, issue: str) -> None:
        problems.append({"field": field, "issue": issue})

    for name in heapq.nsmallest(MAX_LISTED_ISSUES + 1, set(body) - FIELDS):
        bad(name[:100], "unknown field")
    model = body.get("model")
    if model is None:
        model = "auto"
    if not isinstance(model, str) or not model:
        bad("model", 'a model id or "auto"')
    prompt = body.get("prompt")
    # An edit's prompt may be blank (the input restyled alone); a generation needs words.
    if not isinstance(prompt, str) or not (prompt.strip() or edit):
        bad("prompt", "required, a non-empty string")
    elif len(prompt) > MAX_PROMPT_CHARS:
        bad("prompt", f"at most {MAX_PROMPT_CHARS} characters")
    n = body.get("n")
    if n is not None:
        n = as_int(n)
        if n is None or not 1 <= n <= MAX_N:
            bad("n", f"an integer from 1 to {MAX_N}")
    size = body.get("size")
    if size is not None and (not isinstance(size, str) or not size):
        bad("size", 'a size such as "1024x1024", or "auto"')
    chosen: dict[str, str] = {}
    for name, allowed in ENUMS.items():
        value = body.get(name)
        if value is not None and value not in allowed:
            bad(name, f"one of {', '.join(allowed)}")
        chosen[name] = value if isinstance(value, str) and value in allowed else allowed[0]
    compression = body.get("output_compression")
    if compression is not None:
        compression = as_int(compression)
        if compression is None or not 0 <= compression <= 100:
            bad("output_compression", "an integer from 0 to 100")
    seed = body.get("seed")
    if seed is not None:
        seed = as_int(seed)
        if seed is None or not 0 <= seed <= MAX_SEED:
            bad("seed", f"an integer from 0 to {MAX_SEED}")
    stream = body.get("stream")
    if stream is not None and stream is not False:
        bad("stream", "streamed images are not supported; leave stream out or false")
    partial = body.get("partial_images")
    if partial is not None and (isinstance(partial, bool) or as_int(partial) != 0):
        bad("partial_images", "streamed images are not supported; leave it out or 0")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        bad("user", "a string")
    strength = body.get("strength")
    if strength is not None and (not _number(strength) or not 0 <= strength <= 1):
        bad("strength", "a number from 0 to 1")
    artifact = body.get("image_artifact_id")
    if artifact is not None and (not isinstance(artifact, str) or not artifact):
        bad("image_artifact_id", "an artifact id from POST /v1/uploads")
    if not edit:
        for name in ("strength", "image_artifact_id"):
            if body.get(name) is not None:
                bad(name, "only for POST /v1/images/edits")
    if chosen["background"] == "transparent" and chosen["output_format"] == "jpeg":
        bad("background", "a transparent background needs output_format png or webp")
    if problems:
        raise invalid(problems)
    response_format = body.get("response_format") or DEFAULT_RESPONSE_FORMAT
    return ImageAsk(
        model=str(model),
        prompt=str(prompt),
        n=1 if n is None else n,
        size=size or "auto",
        quality=chosen["quality"],
        background=chosen["background"],
        output_format=chosen["output_format"],
        response_format=response_format,
        output_compression=compression,
        seed=seed,
        strength=float(strength) if strength is not None else None,
        image_artifact_id=artifact,
        edit=edit,
    )


def _refusal(ask: ImageAsk, adapter: ImagesAdapter, mask: bool) -> tuple[str, str] | None:
    """Why ``adapter`` cannot serve ``ask`` (field, issue), or None when it can."""
    if ask.size not in adapter.sizes:
        return "size", f"this model makes {', '.join(sorted(adapter.sizes))}"
    if ask.output_format not in adapter.formats:
        return "output_format", f"this model produces {', '.join(sorted(adapter.formats))}"
    if ask.n > adapter.max_n:
        return "n", f"at most {adapter.max_n} for this model"
    if ask.background == "transparent" and not adapter.supports_transparency:
        return "background", "this model does not make transparent backgrounds"
    if ask.edit and not adapter.supports_edit:
        return "image", "this model does not edit images"
    if mask and not adapter.supports_mask:
        return "mask", "this model does not take a mask"
    return None


def supporting(
    ask: ImageAsk,
    plan: list[Candidate],
    adapters: Mapping[str, ImagesAdapter],
    *,
    mask: bool = False,
) -> list[Candidate]:
    """The plan's candidates whose adapter can serve ``ask``; a 400 when there are none."""
    kept: list[Candidate] = []
    first_refusal: tuple[str, str] | None = None
    for candidate in plan:
        adapter = adapters.get(candidate.deployment.provider)
        refusal = ("model", "no image adapter") if adapter is None else _refusal(ask, adapter, mask)
        if refusal is None:
            kept.append(candidate)
        elif first_refusal is None:
            first_refusal = refusal
    if not kept:
        assert first_refusal is not None
        raise invalid([{"field": first_refusal[0], "issue": first_refusal[1]}])
    return kept
