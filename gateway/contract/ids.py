"""Public ids of tasks, artifacts and stored responses: a prefix and 26 Crockford base32 characters.

A 48-bit millisecond timestamp first (so ids sort by creation time, which is what newest-first
task pages rely on) and 80 bits from ``secrets`` (so an id cannot be guessed; ownership is
still checked on every access).
"""

from __future__ import annotations

import re
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY = r"[0-9A-HJKMNP-TV-Z]{26}"
TASK_ID = re.compile(rf"task_{_BODY}")
ARTIFACT_ID = re.compile(rf"art_{_BODY}")
# Stored responses keep the ids they were answered with: the gateway's own, or those of a
# provider that speaks the Responses API natively.
RESPONSE_ID = re.compile(r"resp_[0-9A-Za-z_-]{1,200}")


def new_id(prefix: str) -> str:
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = [_CROCKFORD[(value >> shift) & 31] for shift in range(125, -5, -5)]
    return f"{prefix}_{''.join(chars)}"


def new_task_id() -> str:
    return new_id("task")


def new_artifact_id() -> str:
    return new_id("art")
