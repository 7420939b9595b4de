"""What of a provider's error text may reach a client: the scrubber.

A provider's message can echo what the gateway sent or knows: its credential (whole, cut short or
re-cased), the upstream model id, internal host names, addresses and URLs, other tokens and
account ids. ``Scrubber`` removes them by structure rather than by exact match:

- any run of ``SECRET_RUN`` or more characters of a configured secret, case-insensitively (the
  secrets' lower-cased ``SECRET_RUN``-grams are precomputed once into a set; a message costs one
  set lookup per character, whatever the number of secrets);
- the upstream model ids of the provider's deployments, replaced by the catalog id clients know;
- URLs, host names (``x.y.com``, ``host:port``, ``*.internal``, ``localhost``), IPv4 and IPv6
  addresses, ``Bearer`` tokens, ``sk-``-like keys, ``org-``/``proj_`` ids, long opaque tokens.

It runs on error paths only. ``STRUCTURAL`` is the scrubber without configuration, for pure
parsing code; adapters get their provider's configured one through ``ProviderSettings``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

SECRET_RUN = 8  # a run of this many characters of a secret is redacted wherever it appears
# A secret shorter than SECRET_RUN (a placeholder such as "EMPTY" more likely than a real key) is
# redacted only exactly as configured: lower-cased, it would redact ordinary words.
SHORT_SECRET_MIN = 4
MAX_MESSAGE_CHARS = 500
_MAX_SCANNED_CHARS = 4 * MAX_MESSAGE_CHARS  # the part of a message looked at, then cut
REDACTED = "[redacted]"
AMBIGUOUS_MODEL = "[model]"  # one upstream id behind several catalog ids: name none of them

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Suffixes that make a dotted word a host name; a wider rule ("any alphabetic last label")
# would eat field paths such as ``tools[0].function.name`` that clients need to see.
_HOST_SUFFIXES = (
    "com|net|org|io|ai|dev|app|cloud|co|info|biz|xyz|tech|site|online|edu|gov|mil|int|arpa"
    "|us|uk|eu|de|fr|nl|ch|jp|cn|ca|au|br|ru|in|se|no|fi|es|it|pl|kr|sg"
    "|internal|local|localdomain|lan|corp|home|intranet|svc|cluster|consul|test|example|invalid"
)
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PORT = r"(?::\d{1,5})?"
_PATH = r"(?:/[^\s'\"<>()\[\]{},;]*)?"
_HEX = r"[0-9a-f]{1,4}"
# (pattern, replacement) in order: the most specific shapes first, so a URL is one ``[url]``
# rather than a ``[host]`` inside a mangled rest.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\b[a-z][a-z0-9+.\-]{1,15}://\S+", "[url]"),
        (r"\bbearer\s+[^\s\"',;]+", f"Bearer {REDACTED}"),
        (r"\b(?:sk|pk|rk|key|api|tok|sess)[-_][a-z0-9_\-]{8,}", REDACTED),
        (r"\b(?:org|proj|user|acct)[-_][a-z0-9_\-]{4,}", REDACTED),
        # Long opaque tokens with letters and digits (keys of unknown shape, signatures).
        (r"\b(?=[a-z_]*\d)(?=[0-9_]*[a-z])[a-z0-9_]{24,}\b", REDACTED),
        # IPv6: a ``::`` form or the full eight groups, maybe in brackets with a port.
        (
            rf"\[?(?<![\w:])(?:(?:{_HEX}:){{7}}{_HEX}|(?:{_HEX}(?::{_HEX}){{0,6}})?::"
            rf"(?:{_HEX}(?::{_HEX}){{0,6}})?)(?:%\w+)?(?![\w:])\]?{_PORT}",
            "[address]",
        ),
        (rf"(?<![\w.])(?:\d{{1,3}}\.){{3}}\d{{1,3}}(?![\w.]){_PORT}{_PATH}", "[address]"),
        (rf"(?<![\w.\-])(?:{_LABEL}\.)+(?:{_HOST_SUFFIXES})(?![\w\-]){_PORT}{_PATH}", "[host]"),
        (rf"(?<![\w.\-])(?:{_LABEL}\.)+[a-z][a-z0-9-]*:\d{{1,5}}(?!\d){_PATH}", "[host]"),
        (rf"(?<![\w.\-])localhost(?![\w\-]){_PORT}{_PATH}", "[host]"),
        (r"(?<![\w.\-:])[a-z][a-z0-9\-]*:\d{2,5}(?![\w.:])", "[host]"),
    )
)
# What a field path looks like (``temperature``, ``messages[0].content``, ``tools.0.type``).
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+|\[\d{1,6}\])*")
_MAX_FIELD_CHARS = 128
_STAND_IN = re.compile(r"\x00(\d+)\x00")


class SecretIndex:
    """Every configured secret, as the set of its lower-cased ``SECRET_RUN``-grams."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        grams: set[str] = set()
        short: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            if len(secret) >= SECRET_RUN:
                lowered = secret.lower()
                grams.update(lowered[i : i + SECRET_RUN] for i in range(len(lowered) - 7))
            elif len(secret) >= SHORT_SECRET_MIN:
                short.add(secret)
        self.grams: frozenset[str] = frozenset(grams)
        self.short: tuple[str, ...] = tuple(sorted(short, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every run of a secret's characters replaced by ``[redacted]``."""
        if not self.grams and not self.short:
            return text
        lowered = text.lower()
        if len(lowered) != len(text):  # a few characters lower-case to two: keep positions
            lowered = "".join(char.lower()[0] for char in text)
        spans: list[tuple[int, int]] = []
        grams = self.grams
        if grams:
            run = SECRET_RUN
            for start in range(len(lowered) - run + 1):
                if lowered[start : start + run] in grams:
                    if spans and spans[-1][1] >= start:
                        spans[-1] = (spans[-1][0], start + run)
                    else:
                        spans.append((start, start + run))
        for secret in self.short:
            found = text.find(secret)
            while found >= 0:
                spans.append((found, found + len(secret)))
                found = text.find(secret, found + 1)
        if not spans:
            return text
        return _replace_spans(text, spans, REDACTED)


def _replace_spans(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    spans.sort()
    parts: list[str] = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        parts.append(text[position : max(start, position)])
        parts.append(replacement)
        position = end
    parts.append(text[position:])
    return "".join(parts)


_NO_SECRETS = SecretIndex(())


class Scrubber:
    """A provider's error text made safe for clients: built once per provider from the config.

    ``models`` maps the provider's upstream model ids to the catalog ids clients know.
    """

    def __init__(
        self, secrets: SecretIndex = _NO_SECRETS, models: Mapping[str, str] | None = None
    ) -> None:
        self._secrets = secrets
        names = {
            upstream.lower(): catalog
            for upstream, catalog in (models or {}).items()
            if upstream and upstream != catalog
        }
        self._catalog_ids = names
        # Longest first, and not inside a longer word: "gpt-4" must not eat the start of
        # "gpt-4o", which is another model.
        alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
        self._models = (
            re.compile(rf"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)
            if names
            else None
        )

    def clean(self, text: str) -> str:
        """No secret runs, upstream ids, hosts, addresses, URLs or tokens; bounded."""
        text = _CONTROL.sub(" ", text[:_MAX_SCANNED_CHARS])
        text = self._secrets.redact(text)
        # Upstream ids become numbered stand-ins first (no pattern matches a NUL), so an id or a
        # catalog id that looks like a host name is not taken for one; they are put back last.
        named: list[str] = []
        if self._models is not None:

            def stand_in(match: re.Match[str]) -> str:
                named.append(self._catalog_ids[match.group(0).lower()])
                return f"\x00{len(named) - 1}\x00"

            text = self._models.sub(stand_in, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        if named:
            text = _STAND_IN.sub(lambda match: named[int(match.group(1))], text)
            text = text.replace("\x00", "")
        return text.strip()[:MAX_MESSAGE_CHARS]

    def field(self, param: object) -> str | None:
        """An upstream ``param`` as a detail's field: only a field path that cleaning leaves
        untouched (no secret run, no model id, no host); anything else is dropped."""
        if not isinstance(param, str) or not param or len(param) > _MAX_FIELD_CHARS:
            return None
        if _FIELD_PATH.fullmatch(param) is None or self.clean(param) != param:
            return None
        return param


STRUCTURAL = Scrubber()


def clean_message(text: str) -> str:
    """A provider's error text made safe without configuration (see ``Scrubber.clean``)."""
    return STRUCTURAL.clean(text)


def model_names(provider: str, deployments: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """Upstream id -> catalog id, from (catalog id, provider, upstream id) triples.

    The provider's own deployments come first; other providers' ids are replaced too (a proxy
    upstream may name them). An id behind several catalog ids maps to ``AMBIGUOUS_MODEL``.
    """
    listed = list(deployments)
    names: dict[str, str] = {}
    for own in (True, False):
        found: dict[str, str] = {}
        for catalog_id, owner, upstream in listed:
            if (owner == provider) != own or upstream == catalog_id or upstream in names:
                continue
            known = found.get(upstream)
            found[upstream] = catalog_id if known in (None, catalog_id) else AMBIGUOUS_MODEL
        names.update(found)
    return names
