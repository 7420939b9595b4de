"""Egress through an HTTP proxy (tests/fakes/connect_proxy.py, a real proxy on loopback).

Which proxy a target takes (the environment, NO_PROXY, the per-provider ``proxy_url``); the
chat client's CONNECT tunnel with TLS to a private-CA upstream through it, the proxy seeing the
credentials and the upstream not; plain http in absolute form; every provider kind of the
registry, chat and music, reaching its upstream through the proxy; the gateway's chat (sync and
streamed) through it; and a refused tunnel that is a 502 with no credential in any log line.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import httpx
import pytest
import trustme
from aiohttp import web

from providers.base import ChatCall, ProviderSettings, UpstreamError
from providers.http.proxy import Proxy, bypasses, proxy_for
from providers.music.base import MusicRequest
from providers.registry import ADAPTERS, MUSIC_ADAPTERS, build_adapter, build_music_adapter
from tests.conftest import CapturedLogs, GatewayFactory, Upstream, auth, base_config
from tests.fakes.connect_proxy import serve_proxy
from tests.fakes.raw_http import LOOPS, Request, mapper, ok, post, run, serve, upstream
from tests.fakes.server import serve_aiohttp

CREDENTIALS = "egress-user:s3cret-proxy-pass"
BASIC = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()


def test_which_proxy_a_target_takes() -> None:
    env = {
        "HTTPS_PROXY": "http://upper:3128",
        "https_proxy": "http://lower:3128",
        "HTTP_PROXY": "http://plain:8080",
        "NO_PROXY": "internal.example, .corp, 10.0.0.0/8, localhost:8080",
    }
    assert proxy_for("https://api.openai.com/v1", None, env) == Proxy.parse("http://lower:3128")
    assert proxy_for("http://api.example/v1", None, env) == Proxy.parse("http://plain:8080")
    for direct in ("https://internal.example", "https://a.b.corp", "https://10.1.2.3:8443"):
        assert proxy_for(direct, None, env) is None, direct
    assert proxy_for("https://localhost/x", None, env) is None
    assert proxy_for("https://notinternal.example", None, env) is not None
    assert proxy_for("https://api.openai.com", "", env) is None  # the provider says direct
    chosen = proxy_for("https://api.openai.com", "http://u:p%40ss@own:9000", env)
    assert chosen is not None and (chosen.host, chosen.port) == ("own", 9000)
    assert chosen.authorization == "Basic " + base64.b64encode(b"u:p@ss").decode()
    assert "p%40ss" not in repr(chosen) and "u:p" not in repr(chosen)  # never in a log line
    assert proxy_for("https://api.openai.com", None, {}) is None
    assert bypasses("anything", "*")
    with pytest.raises(ValueError, match="http://"):
        Proxy.parse("socks5://proxy:1080")


@LOOPS
def test_https_through_a_connect_tunnel_keeps_tls_end_to_end(
    loop_kind: str, tmp_path: Path
) -> None:
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_tls)
    ca_file = tmp_path / "private-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))

    async def answer(request: Request, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 0:
            writer.write(ok(b'{"n":0}'))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b'data: {"a":1}\n\n')
        return False

    with serve_proxy(CREDENTIALS) as (proxy_url, log):
        proxied = proxy_url.replace("http://", f"http://{CREDENTIALS}@")

        async def test() -> None:
            raw, server = await serve(answer, server_tls)
            options = {"ca_file": str(ca_file), "proxy_url": proxied}
            client = upstream(raw.port, "https", options=options)
            await client.start()
            try:
                assert await post(client) == b'{"n":0}'
                async with client.open_stream("/chat/completions", b"{}", {}, mapper) as batches:
                    assert [e async for batch in batches for e in batch] == [b'{"a":1}']
            finally:
                await client.close()
                server.close()
            # One tunnel, kept alive for both exchanges like a direct connection.
            assert [(s.method, s.target) for s in log.seen] == [
                ("CONNECT", f"127.0.0.1:{raw.port}")
            ]
            assert log.seen[0].authorization == BASIC and raw.connections == 1
            # Inside the tunnel: TLS to the upstream, which never sees the proxy's credentials.
            assert [r.head.split(b" ", 2)[1] for r in raw.requests] == [b"/v1/chat/completions"] * 2
            assert all(r.header(b"proxy-authorization") is None for r in raw.requests)

        run(test, loop_kind)


def test_plain_http_goes_in_absolute_form_through_the_environment_s_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "seen": request.headers.get("x-own")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    with serve_aiohttp(app) as origin, serve_proxy(CREDENTIALS) as (proxy_url, log):
        monkeypatch.setenv("HTTP_PROXY", proxy_url.replace("http://", f"http://{CREDENTIALS}@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        port = int(origin.rsplit(":", 1)[1])

        async def test() -> None:
            client = upstream(port)
            await client.start()
            try:
                assert b'"/v1/chat/completions"' in await post(client)
                reply = await client.send("POST", "/files", mapper, payload=b"{}")
                assert reply.status == 200
                chunks = [c async for c in client.download(f"{origin}/out.wav", mapper)]
                assert b'"/out.wav"' in b"".join(chunks)
            finally:
                await client.close()

        asyncio.run(test())
        assert log.targets() == [
            f"POST {origin}/v1/chat/completions",
            f"POST {origin}/v1/files",
            f"GET {origin}/out.wav",
        ]
        assert all(s.authorization == BASIC for s in log.seen)
        assert not any(b"proxy-authorization" in head.lower() for head in log.forwarded_heads)


def _catch_all() -> web.Application:
    async def anything(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "no"}}, status=500)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


def test_every_provider_kind_reaches_its_upstream_through_the_proxy() -> None:
    call = ChatCall({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "up-1", "r1")
    # A model id and format each music kind accepts (they check both before any request).
    music_models = {"replicate": ("meta/musicgen", "wav"), "stability": ("stable-audio-2.5", "mp3")}
    with serve_aiohttp(_catch_all()) as origin, serve_proxy() as (proxy_url, log):

        async def reach(kind: str) -> None:
            settings = ProviderSettings(
                name=kind,
                kind=kind,
                base_url=origin,
                api_key="upstream-key",
                options={"proxy_url": proxy_url},
            )
            adapter = build_adapter(settings) if kind in ADAPTERS else build_music_adapter(settings)
            await adapter.start()
            try:
                with pytest.raises(UpstreamError):
                    if kind in ADAPTERS:
                        await adapter.complete(call)  # type: ignore[union-attr]
                    else:
                        model, audio = music_models.get(kind, ("fal-ai/stable-audio", "wav"))
                        request = MusicRequest(model, "r1", "t1", "a calm piano", 10.0, audio)
                        await adapter.submit(request)  # type: ignore[union-attr]
            finally:
                await adapter.close()

        for kind in sorted({*ADAPTERS, *MUSIC_ADAPTERS} - {"local"}):
            before = len(log.seen)
            asyncio.run(reach(kind))
            assert len(log.seen) > before, f"{kind} did not go through the proxy"
            assert all(s.target.startswith(origin) for s in log.seen[before:]), kind


def test_the_gateway_s_chat_goes_through_the_proxy_and_a_refusal_leaks_nothing(
    gateway_factory: GatewayFactory,
    openai_fake: Upstream,
    anthropic_fake: Upstream,
    logs: CapturedLogs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve_proxy(CREDENTIALS) as (proxy_url, log):
        monkeypatch.setenv("HTTP_PROXY", proxy_url.replace("http://", f"http://{CREDENTIALS}@"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        gateway = gateway_factory(base_config(openai_fake.url, anthropic_fake.url))
        client = httpx.Client(trust_env=False)  # the test's own requests go direct
        chat = gateway.url + "/v1/chat/completions"
        for model in ("gpt-test", "claude-test"):
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            assert client.post(chat, json=body, headers=auth()).status_code == 200
            streamed_body = {**body, "stream": True}
            with client.stream("POST", chat, json=streamed_body, headers=auth()) as streamed:
                assert streamed.status_code == 200
                assert streamed.read().endswith(b"data: [DONE]\n\n")
        through = {s.target.split("/v")[0] for s in log.seen}
        assert through == {openai_fake.url, anthropic_fake.url}
        assert len(log.seen) == 4 and all(s.authorization == BASIC for s in log.seen)

        # Wrong credentials: the proxy answers 407, the client gets a 502, and the password
        # appears in no log line and no answer.
        wrong = proxy_url.replace("http://", "http://egress-user:wrong-pass@")
        monkeypatch.setenv("HTTP_PROXY", wrong)
        refused = gateway_factory(base_config(openai_fake.url, anthropic_fake.url))
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
        answer = client.post(refused.url + "/v1/chat/completions", json=body, headers=auth())
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "upstream_error"
        assert "wrong-pass" not in answer.text and "wrong-pass" not in logs.text()
        assert "s3cret-proxy-pass" not in logs.text()
        client.close()
