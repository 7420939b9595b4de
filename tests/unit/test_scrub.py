"""The scrubber of provider error text: each way a secret or an internal name got through."""

from __future__ import annotations

import orjson
import pytest

from gateway.config.settings import settings_from_dict
from providers.base import UpstreamError
from providers.chat.anthropic_response import StreamTranslator
from providers.chat.openai_compat import error_from_response, parse_chunk
from providers.scrub import (
    AMBIGUOUS_MODEL,
    MAX_MESSAGE_CHARS,
    STRUCTURAL,
    Scrubber,
    SecretIndex,
    model_names,
)
from tests.conftest import ANTHROPIC_SECRET, OPENAI_SECRET, TEST_ENV, base_config

KEY = "sk-live-Zq9xk2LmP0aaBBccDDeeFF"
PLAIN_KEY = "Zq9xk2LmP0aaBBccDDeeFFgg"  # no prefix: nothing but the configuration says it's a key
SCRUBBER = Scrubber(
    SecretIndex([KEY, PLAIN_KEY, None, "EMPTY"]),
    {"gpt-4o-2024-08-06": "smart", "us.anthropic.claude-3-5-sonnet-v2:0": "claude"},
)


@pytest.mark.parametrize(
    "leak",
    [
        PLAIN_KEY[:-2],  # the key minus its last two characters
        PLAIN_KEY.lower(),
        PLAIN_KEY.upper(),
        PLAIN_KEY[3:14],  # any run of 8 or more of its characters, anywhere
        KEY[:-2],
        KEY.lower(),
    ],
)
def test_any_run_of_a_configured_secret_is_redacted(leak: str) -> None:
    cleaned = SCRUBBER.clean(f"Invalid credential '{leak}' for this project")
    assert cleaned == "Invalid credential '[redacted]' for this project"


def test_a_run_shorter_than_eight_and_a_short_placeholder_key_in_other_case_stay() -> None:
    assert SCRUBBER.clean(f"prefix {PLAIN_KEY[:7]} ok") == f"prefix {PLAIN_KEY[:7]} ok"
    # "EMPTY" is configured (vLLM's placeholder key): exact matches go, ordinary words stay.
    assert SCRUBBER.clean("key EMPTY; messages must not be empty") == (
        "key [redacted]; messages must not be empty"
    )


def test_the_upstream_model_id_becomes_the_catalog_id() -> None:
    cleaned = SCRUBBER.clean("The model `GPT-4o-2024-08-06` does not exist; gpt-4o-2024-08-06.")
    assert cleaned == "The model `smart` does not exist; smart."
    # An id shaped like host:port is replaced before hosts are stripped.
    assert SCRUBBER.clean("us.anthropic.claude-3-5-sonnet-v2:0 is throttled") == (
        "claude is throttled"
    )
    # Another model whose name starts with the id is not cut in half.
    assert "gpt-4o-2024-08-06x" in SCRUBBER.clean("try gpt-4o-2024-08-06x")


@pytest.mark.parametrize(
    ("leak", "placeholder"),
    [
        ("vllm-7.corp.internal:8443", "[host]"),
        ("inference-backend:8000", "[host]"),
        ("localhost:11434", "[host]"),
        ("db.internal", "[host]"),
        ("myres.openai.azure.com", "[host]"),
        ("api.example.com/v1/chat", "[host]"),
        ("10.1.2.3", "[address]"),
        ("10.1.2.3:8080", "[address]"),
        ("fd00::1:2", "[address]"),
        ("[2001:db8::8a2e:370:7334]:443", "[address]"),
        ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "[address]"),
        ("http://10.0.0.5:8000/v1?key=x", "[url]"),
        ("Bearer abc123def456ghi789", "Bearer [redacted]"),
        ("sk-abcdef123456", "[redacted]"),
        ("org-AbCdEf123456", "[redacted]"),
        ("proj_abc123XYZ", "[redacted]"),
        ("a1b2c3d4e5f6a7b8c9d0e1f2a3b4", "[redacted]"),
    ],
)
def test_hosts_addresses_urls_and_tokens_are_stripped(leak: str, placeholder: str) -> None:
    assert STRUCTURAL.clean(f"failed at {leak} today") == f"failed at {placeholder} today"


def test_ordinary_text_and_field_paths_survive() -> None:
    text = (
        "Invalid value for 'tools[0].function.name' and messages.0.content at 12:30:45; "
        "see std::vector, e.g. this. max_tokens is 4096."
    )
    assert STRUCTURAL.clean(text) == text


def test_messages_are_bounded_and_lose_control_characters() -> None:
    assert STRUCTURAL.clean("x" * 10_000) == "x" * MAX_MESSAGE_CHARS
    assert STRUCTURAL.clean("a\x00b\x1bc") == "a b c"


def test_param_is_kept_only_as_a_clean_field_path() -> None:
    assert SCRUBBER.field("messages[0].content") == "messages[0].content"
    assert SCRUBBER.field("tools.0.function.name") == "tools.0.function.name"
    for bad in (None, 3, "", "gpt-4o-2024-08-06", PLAIN_KEY, "x.corp", "a b", "x" * 200):
        assert SCRUBBER.field(bad) is None


def test_openai_error_keeps_param_and_cleans_message() -> None:
    body = b'{"error": {"message": "bad at 10.1.2.3", "param": "messages[1].role", "type": "x"}}'
    error = error_from_response(400, body, {}, SCRUBBER)
    assert (error.kind, error.message, error.param) == (
        "client_error",
        "bad at [address]",
        "messages[1].role",
    )
    assert error_from_response(500, body, {}, SCRUBBER).param is None


def test_model_names_per_provider_and_ambiguous_ids() -> None:
    deployments = [
        ("fast", "openai", "gpt-x"),
        ("cheap", "openai", "gpt-x"),
        ("smart", "openai", "gpt-y"),
        ("same", "openai", "same"),
        ("other", "azure", "gpt-z"),
        ("elsewhere", "azure", "gpt-y"),
    ]
    assert model_names("openai", deployments) == {
        "gpt-x": AMBIGUOUS_MODEL,
        "gpt-y": "smart",  # this provider's own deployment wins
        "gpt-z": "other",
    }


def test_loaded_settings_give_each_provider_every_secret_and_its_own_models() -> None:
    settings = settings_from_dict(base_config(), TEST_ENV)
    scrubber = settings.providers["openai"].scrubber
    assert scrubber is not None
    text = f"{OPENAI_SECRET[:-2]} {ANTHROPIC_SECRET.upper()} upstream-gpt claude-upstream"
    # Every provider's secret and every deployment's model id.
    assert scrubber.clean(text) == "[redacted] [redacted] gpt-test claude-test"


def test_error_events_in_a_stream_are_scrubbed_like_error_answers() -> None:
    leak = f"Key {PLAIN_KEY.lower()[:-1]} cannot use gpt-4o-2024-08-06 at 10.1.2.3"
    event = orjson.dumps({"error": {"message": leak}})
    with pytest.raises(UpstreamError) as openai_error:
        parse_chunk(event, SCRUBBER)
    translator = StreamTranslator("claude", scrubber=SCRUBBER)
    with pytest.raises(UpstreamError) as anthropic_error:
        translator.feed({"type": "error", "error": {"type": "overloaded_error", "message": leak}})
    for error in (openai_error.value, anthropic_error.value):
        assert error.message == "Key [redacted] cannot use smart at [address]"
