"""Public ids of tasks, artifacts and stored responses: a prefix and 26 Crockford base32 characters.

A 48-bit millisecond timestamp first (so ids sort by creation time, which is what newest-first
task pages rely on) and 80 bits from ``secrets`` (so an id cannot be guessed; ownership is
still checked on every access).

Stored responses and the parts of an answer are named as OpenAI names them, a prefix and hex:
``resp_`` and 48 hex digits from ``secrets`` (nothing lists them by time, and a response can be
fetched, so its id must not be guessable); an output item (``msg_``, ``fc_``, ``call_``) names
nothing that can be fetched, so its 96 bits come from a fast PRNG: unique, not secret. Both
cost one C call for their digits, not a Python loop per character.
"""

from __future__ import annotations

import random
import re
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every 10-bit value as two Crockford characters: 13 lookups encode a 130-bit field (a 128-bit id
# after two zero bits), 26 characters, the first of which is at most "7" as in a ULID.
CROCKFORD_PAIRS = [first + second for first in _CROCKFORD for second in _CROCKFORD]
PAIR_SHIFTS = range(120, -10, -10)
_BODY = r"[0-9A-HJKMNP-TV-Z]{26}"
TASK_ID = re.compile(rf"task_{_BODY}")
ARTIFACT_ID = re.compile(rf"art_{_BODY}")
# Stored responses keep the ids they were answered with: the gateway's own, or those of a
# provider that speaks the Responses API natively.
RESPONSE_ID = re.compile(r"resp_[0-9A-Za-z_-]{1,200}")


_fast_bits = random.Random().getrandbits


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    pairs = CROCKFORD_PAIRS
    return prefix + "_" + "".join([pairs[(value >> shift) & 1023] for shift in PAIR_SHIFTS])


def new_response_id() -> str:
    return "resp_" + secrets.token_hex(24)


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{_fast_bits(96):024x}"


def new_task_id() -> str:
    return new_id("task")


def new_artifact_id() -> str:
    return new_id("art")
