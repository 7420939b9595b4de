"""Validation of ``POST /v1/music/generations`` bodies: fields, then the chosen models' abilities.

``validate_music`` checks the body on its own (types, ranges, unknown fields; one ``details``
entry per problem). ``supporting`` then keeps the plan's deployments whose adapter can do what
was asked (format, duration, lyrics, reference mode): a request no deployment can serve is a 400
naming the reason, never a silent ignore.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.contract.errors import MAX_LISTED_ISSUES, invalid
from gateway.policy.routing import Candidate
from providers.base import as_int
from providers.music.base import REFERENCE_MODES, MusicAdapter

MAX_PROMPT_CHARS = 4000
MAX_LYRICS_CHARS = 10000
DEFAULT_DURATION_S = 10.0
DEFAULT_FORMAT = "wav"
MAX_SEED = 2**32 - 1
FIELDS = frozenset(
    {
        "model",
        "prompt",
        "lyrics",
        "instrumental",
        "duration_seconds",
        "format",
        "seed",
        "reference_artifact_id",
        "reference_mode",
        "reference_strength",
    }
)


@dataclass(frozen=True, slots=True)
class MusicAsk:
    """A validated music request."""

    model: str
    prompt: str
    duration_seconds: float
    format: str
    lyrics: str | None
    instrumental: bool
    seed: int | None
    reference_artifact_id: str | None
    reference_mode: str | None
    reference_strength: float | None

    @property
    def capability(self) -> str:
        return "music.reference_audio" if self.reference_artifact_id else "music.text"

    def params(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "duration_seconds": self.duration_seconds,
            "format": self.format,
            "lyrics": self.lyrics,
            "instrumental": self.instrumental,
            "seed": self.seed,
            "reference_artifact_id": self.reference_artifact_id,
            "reference_mode": self.reference_mode,
            "reference_strength": self.reference_strength,
        }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_music(body: dict[str, Any]) -> MusicAsk:
    problems: list[dict[str, str]] = []

    def bad(field: str, issue: str) -> None:
        problems.append({"field": field, "issue": issue})

    # The first few unknown names in sorted order, without sorting a million of them.
    for name in heapq.nsmallest(MAX_LISTED_ISSUES + 1, set(body) - FIELDS):
        bad(name[:100], "unknown field")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        bad("model", 'required, a model id or "auto"')
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        bad("prompt", "required, a non-empty string")
    elif len(prompt) > MAX_PROMPT_CHARS:
        bad("prompt", f"at most {MAX_PROMPT_CHARS} characters")
    lyrics = body.get("lyrics")
    if lyrics is not None and (not isinstance(lyrics, str) or len(lyrics) > MAX_LYRICS_CHARS):
        bad("lyrics", f"a string of at most {MAX_LYRICS_CHARS} characters")
    instrumental = body.get("instrumental", False)
    if not isinstance(instrumental, bool):
        bad("instrumental", "must be a boolean")
    elif instrumental and lyrics:
        bad("lyrics", "an instrumental has no lyrics")
    duration = body.get("duration_seconds", DEFAULT_DURATION_S)
    if not _number(duration) or not 1 <= duration <= 600:
        bad("duration_seconds", "a number from 1 to 600")
    audio_format = body.get("format", DEFAULT_FORMAT)
    if not isinstance(audio_format, str) or not audio_format:
        bad("format", 'a format name such as "wav" or "mp3"')
    seed = body.get("seed")
    if seed is not None:
        seed = as_int(seed)  # JSON Schema's integer: 7.0 counts
        if seed is None or not 0 <= seed <= MAX_SEED:
            bad("seed", f"an integer from 0 to {MAX_SEED}")
    reference = body.get("reference_artifact_id")
    if reference is not None and (not isinstance(reference, str) or not reference):
        bad("reference_artifact_id", "an artifact id from POST /v1/uploads")
    mode = body.get("reference_mode")
    if mode is not None and mode not in REFERENCE_MODES:
        bad("reference_mode", f"one of {', '.join(REFERENCE_MODES)}")
    strength = body.get("reference_strength")
    if strength is not None and (not _number(strength) or not 0 <= strength <= 1):
        bad("reference_strength", "a number from 0 to 1")
    if reference is None and (mode is not None or strength is not None):
        bad("reference_artifact_id", "required with reference_mode or reference_strength")
    if problems:
        raise invalid(problems)
    return MusicAsk(
        model=str(model),
        prompt=str(prompt),
        duration_seconds=float(duration),
        format=str(audio_format).lower(),
        lyrics=lyrics or None,
        instrumental=bool(instrumental),
        seed=seed,
        reference_artifact_id=reference,
        reference_mode=mode,
        reference_strength=float(strength) if strength is not None else None,
    )


def _refusal(ask: MusicAsk, adapter: MusicAdapter) -> tuple[str, str] | None:
    """Why ``adapter`` cannot serve ``ask`` (field, issue), or None when it can."""
    if ask.format not in adapter.formats:
        return "format", f"this model produces {', '.join(sorted(adapter.formats))}"
    if ask.duration_seconds > adapter.max_duration_seconds:
        return "duration_seconds", f"at most {adapter.max_duration_seconds:g} for this model"
    if ask.lyrics and not getattr(adapter, "supports_lyrics", False):
        return "lyrics", "this model does not sing lyrics; send an instrumental prompt"
    if ask.reference_artifact_id:
        if not adapter.reference_modes:
            return "reference_artifact_id", "this model does not take reference audio"
        if ask.reference_mode is not None and ask.reference_mode not in adapter.reference_modes:
            modes = ", ".join(m for m in REFERENCE_MODES if m in adapter.reference_modes)
            return "reference_mode", f"this model supports {modes}"
    return None


def reference_mode_for(ask: MusicAsk, adapter: MusicAdapter) -> str | None:
    """The mode to use: the one asked for, else the adapter's first in ``REFERENCE_MODES``."""
    if not ask.reference_artifact_id:
        return None
    if ask.reference_mode is not None:
        return ask.reference_mode
    return next(m for m in REFERENCE_MODES if m in adapter.reference_modes)


def supporting(
    ask: MusicAsk, plan: list[Candidate], adapters: Mapping[str, MusicAdapter]
) -> list[Candidate]:
    """The plan's candidates whose adapter can serve ``ask``; a 400 when there are none."""
    kept: list[Candidate] = []
    first_refusal: tuple[str, str] | None = None
    for candidate in plan:
        refusal = _refusal(ask, adapters[candidate.deployment.provider])
        if refusal is None:
            kept.append(candidate)
        elif first_refusal is None:
            first_refusal = refusal
    if not kept:
        assert first_refusal is not None
        raise invalid([{"field": first_refusal[0], "issue": first_refusal[1]}])
    return kept
