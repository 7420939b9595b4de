"""Strict configuration loading: every mistake names its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import check_bind, main
from gateway.config.settings import ConfigError, hash_key, load_settings, settings_from_dict
from tests.conftest import TEST_ENV, base_config

ROOT = Path(__file__).resolve().parents[2]


def load(mutate: Any) -> None:
    config = copy.deepcopy(base_config())
    mutate(config)
    settings_from_dict(config, TEST_ENV)


def test_embedded_default_runs_with_no_keys_on_the_local_provider() -> None:
    settings = load_settings(env={})
    assert {p.kind for p in settings.providers.values()} == {"local"}
    assert settings.server.host == "127.0.0.1"
    assert settings.keys["dev"].sha256 == hash_key("beatra-dev-key")
    assert settings.keys["dev"].development


def test_example_config_loads_when_its_secrets_are_in_the_environment() -> None:
    env = {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "y", "BEATRA_KEY_APP": "z"}
    settings = load_settings(ROOT / "config" / "example.toml", env)
    assert settings.auto == ("gpt-4o-mini", "claude-sonnet", "local-chat")
    assert settings.providers["anthropic"].api_key == "y"
    with pytest.raises(ConfigError, match=r"providers.openai.api_key_env: .*OPENAI_API_KEY"):
        load_settings(ROOT / "config" / "example.toml", {})


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["models"]["claude-test"].update(provider="antrhopic"),
            'models.claude-test.provider: unknown provider "antrhopic"',
        ),
        (lambda c: c["server"].update(prot=8080), "server.prot: unknown key"),
        (lambda c: c.update(extra={}), "extra: unknown key"),
        (lambda c: c["server"].update(port="80"), "server.port: expected an integer, got str"),
        (
            lambda c: c["server"].update(port=True),
            "server.port: expected an integer, got a boolean",
        ),
        (
            lambda c: c["providers"]["openai"].update(kind="openia"),
            'providers.openai.kind: unknown provider kind "openia"',
        ),
        (
            lambda c: c["routing"].update(auto=["gpt-test", "nope"]),
            'routing.auto[1]: unknown model "nope"',
        ),
        (
            lambda c: c["routing"].update(aliases={"x": "nope"}),
            'routing.aliases.x: unknown model "nope"',
        ),
        (
            lambda c: c["routing"].update(aliases={"gpt-test": "local-chat"}),
            "routing.aliases.gpt-test: an alias must not shadow a model id",
        ),
        (
            lambda c: c["keys"]["dev"].update(sha256="abc"),
            'keys.dev: give exactly one of "sha256" or "key_env"',
        ),
        (
            lambda c: c["keys"].update(bad={"sha256": "zz"}),
            "keys.bad.sha256: expected 64 hex digits",
        ),
        (
            lambda c: c["keys"]["limited"].update(models=["ghost"]),
            'keys.limited.models[0]: unknown model "ghost"',
        ),
        (
            lambda c: c["models"].update(m={"deployments": [{"provider": "local", "wieght": 2}]}),
            "models.m.deployments[0].wieght: unknown key",
        ),
        (
            lambda c: c["models"]["gpt-test"].update(capabilities=["chat", "video"]),
            'models.gpt-test.capabilities[1]: unknown capability "video"',
        ),
        (lambda c: c["models"].update(auto={"provider": "local"}), "models.auto: "),
        (
            lambda c: c["providers"]["openai"].pop("base_url"),
            "providers.openai.base_url: is required",
        ),
        (lambda c: c.pop("keys"), "keys: is required"),
        (lambda c: c["relay"].update(cooldown_failures=0), "relay.cooldown_failures: must be at"),
    ],
)
def test_mistakes_fail_at_start_with_their_path(mutate: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(mutate)
    assert str(caught.value).startswith(message)


def test_development_key_is_refused_off_loopback() -> None:
    settings = load_settings(env={})
    check_bind(settings, "127.0.0.1")
    check_bind(settings, "::1")
    check_bind(settings, "localhost")
    with pytest.raises(ConfigError, match=r"keys\.dev\.development"):
        check_bind(settings, "0.0.0.0")


def test_cli_reports_config_errors_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.local]\nkind = "local"\n[models.x]\nprovider = "lcoal"\n[keys]\n')
    assert main(["--config", str(bad), "--check"]) == 2
    assert 'models.x.provider: unknown provider "lcoal"' in capsys.readouterr().err
    assert main(["--host", "0.0.0.0", "--check"]) == 2
    assert "development key" in capsys.readouterr().err
    assert main(["--check"]) == 0
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    assert main(["--config", str(broken), "--check"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def options(provider: str, **given: Any) -> Any:
    return lambda c: c["providers"][provider].update(options=given)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            options("openai", stream_usgae=False),
            "providers.openai.options.stream_usgae: unknown key",
        ),
        (
            options("openai", stream_usage="false"),
            "providers.openai.options.stream_usage: expected true or false, got str",
        ),
        (
            options("anthropic", default_max_tokens="4096"),
            "providers.anthropic.options.default_max_tokens: expected an integer, got str",
        ),
        (
            options("openai", max_response_bytes=True),
            "providers.openai.options.max_response_bytes: expected an integer, got a boolean",
        ),
        # The offline kind connects to nothing: the HTTP options are not among its own.
        (options("local", ca_file="ca.pem"), "providers.local.options.ca_file: unknown key"),
        (
            options("local", max_duration_seconds="5"),
            "providers.local.options.max_duration_seconds: expected a number, got str",
        ),
        (
            lambda c: c["providers"].update(
                f={"kind": "fal", "base_url": "http://x", "options": {"model_families": {"a/b": 1}}}
            ),
            'providers.f.options.model_families."a/b": expected a string, got int',
        ),
        (
            lambda c: c["providers"].update(
                r={"kind": "replicate", "base_url": "http://x", "options": {"top_k": 2.5}}
            ),
            "providers.r.options.top_k: expected an integer, got float",
        ),
    ],
)
def test_provider_options_are_checked_against_the_adapters_schemas(
    mutate: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(mutate)
    assert str(caught.value).startswith(message)


def test_provider_options_are_read_as_their_schemas_type_them() -> None:
    config = copy.deepcopy(base_config())
    config["providers"]["openai"]["options"] = {"stream_usage": False, "max_response_bytes": 1024}
    # Both adapters of the offline kind read the one table: chat and music options together.
    config["providers"]["local"]["options"] = {"token_delay_ms": 5, "max_duration_seconds": 30}
    config["providers"]["fal"] = {
        "kind": "fal",
        "base_url": "https://queue.fal.run",
        "options": {"reference_modes": [], "input_defaults": {"steps": 50}},
    }
    settings = settings_from_dict(config, TEST_ENV)
    assert settings.providers["openai"].options == {
        "stream_usage": False,
        "max_response_bytes": 1024,
    }
    local = settings.providers["local"].options
    assert local == {"token_delay_ms": 5.0, "max_duration_seconds": 30.0}
    assert isinstance(local["token_delay_ms"], float)
    fal = settings.providers["fal"].options
    assert fal == {"reference_modes": (), "input_defaults": {"steps": 50}}
