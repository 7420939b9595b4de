"""The fuzzed gateway's configuration and schemathesis' settings, for ``test_fuzz``.

One offline configuration (every model on the ``local`` provider, fast polling, short renders)
and one schemathesis configuration: seeded, every check but the response-time and stateful ones,
with the statuses each check accepts. ``BEATRA_FUZZ_SEED=<n>`` replays or varies the run,
``BEATRA_FUZZ_EXAMPLES=<n>`` widens it.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

from tests.conftest import DEV_KEY

MAX_EXAMPLES = int(os.environ.get("BEATRA_FUZZ_EXAMPLES", "30"))
SEED = int(os.environ.get("BEATRA_FUZZ_SEED", "20240611"))
# Every check schemathesis has, but max_response_time and the stateful ones (use_after_free,
# ensure_resource_availability, object_level_authorization: the stateful phase is off; another
# tenant's resources are covered in tests/api/abuse/). positive_data_acceptance holds the spec to
# what the validators enforce: a request the spec allows is never a 400, 413, 415 or 416 (an
# unknown model or artifact id is 404, which the check accepts).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
    "positive_data_acceptance",
]
CATALOG = ("auto", "local-chat", "local-music", "local-embed", "local-image")
# Each check's own expected statuses (schemathesis' defaults), plus 413.
ACCEPTED = ["2xx", "401", "403", "404", "409", "413", "429", "5xx"]
REJECTED = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]


def fuzz_config(storage: str) -> dict[str, Any]:
    """Offline models only, fast polling, short renders: every case is cheap and local."""
    return {
        "server": {"max_body_bytes": 64 * 1024},
        "providers": {"local": {"kind": "local", "options": {"max_duration_seconds": 5}}},
        "models": {
            "local-chat": {"provider": "local", "model": "local-1"},
            "local-music": {
                "provider": "local",
                "model": "local-music-1",
                "capabilities": ["music.text", "music.reference_audio"],
            },
            "local-embed": {
                "provider": "local",
                "model": "local-embed-1",
                "capabilities": ["embeddings"],
                "dimensions": 256,
            },
            "local-image": {
                "provider": "local",
                "model": "local-image-1",
                "capabilities": ["image.text", "image.edit"],
            },
        },
        "routing": {"auto": ["local-chat", "local-music", "local-embed", "local-image"]},
        "tasks": {"poll_initial_s": 0.005, "poll_max_s": 0.02, "max_running": 2},
        "storage": {"path": storage, "max_upload_bytes": 256 * 1024},
        "keys": {"dev": {"key_env": "TEST_DEV_KEY"}, "second": {"key_env": "TEST_SECOND_KEY"}},
    }


def schemathesis_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            # Reproductions must show the values really sent, not "[Filtered]".
            "output": {"sanitization": {"enabled": False}},
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "database": "none",
                # The key comes from the auth config on every case; what an absent or wrong key
                # gets is checked once per operation (ignored_auth) and in tests/api/abuse/.
                "with-security-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "request-timeout": 10.0,
            "auth": {"openapi": {"bearer": {"bearer": DEV_KEY}}},
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
                # JSON Schema cannot bound a body's size in bytes: a boundary case (10,000
                # messages) can pass the schema and still exceed server.max_body_bytes, and a
                # body over it is refused with 413 whether or not the schema allows it.
                "positive_data_acceptance": {"enabled": True, "expected-statuses": ACCEPTED},
                "negative_data_rejection": {"enabled": True, "expected-statuses": REJECTED},
            },
        }
    )
