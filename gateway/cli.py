"""The ``beatra-gateway`` command: load the configuration, check it, serve with uvicorn."""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import sys

import uvicorn

from gateway.app import create_app
from gateway.config.settings import ConfigError, Settings, load_settings
from gateway.http.server_protocol import deadline_protocol
from gateway.logs import configure_logging, server_log_config


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings, host: str) -> None:
    """Refuse to expose a development key on a non-loopback address."""
    if is_loopback(host):
        return
    for key in settings.keys.values():
        if key.development and not key.disabled:
            raise ConfigError(
                f"keys.{key.name}.development",
                f"a development key may only be served on loopback, not on {host}",
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="beatra-gateway", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("BEATRA_CONFIG") or None,
        help="TOML configuration file (env BEATRA_CONFIG; default: the embedded default)",
    )
    parser.add_argument("--host", default=os.environ.get("BEATRA_HOST"), help="bind address")
    parser.add_argument("--port", type=int, default=os.environ.get("BEATRA_PORT"), help="bind port")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BEATRA_LOG_LEVEL"),
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    return parser.parse_args(argv)


def tune_garbage_collector() -> None:
    """Make the cyclic garbage collector cheap for a server's allocation pattern.

    Requests leave no reference cycles behind (refcounting frees them), yet the collector runs
    every 700 net allocations and each run walks every in-flight request's objects: about 5 % of
    the CPU of a proxied request. Freezing what startup built (modules, settings, the app) keeps
    full collections from walking it again and again, and a higher first threshold makes the
    young collections rare. Measured: instructions per request at c=32 fell from 695k to 658k.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args.config)
        host = args.host or settings.server.host
        port = int(args.port) if args.port is not None else settings.server.port
        check_bind(settings, host)
    except (ConfigError, OSError) as exc:
        print(f"beatra-gateway: config error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print("beatra-gateway: configuration is valid")
        return 0
    level = args.log_level or settings.server.log_level
    configure_logging(level, settings.server.log_format)
    app = create_app(settings)
    tune_garbage_collector()
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=deadline_protocol(settings.server.header_timeout_s, settings.server.body_timeout_s),
        lifespan="on",
        access_log=False,  # the gateway writes its own structured access line
        log_config=server_log_config(),  # uvicorn's own lines as structured events too
        log_level="warning" if level != "debug" else "debug",
        server_header=False,
        # The gateway reads no client address, so uvicorn's X-Forwarded-For layer is pure cost.
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, round(settings.server.shutdown_grace_s)),
    )
    return 0
