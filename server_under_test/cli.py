"""``python -m server_under_test``: start the chat server with a preset or config file and overrides."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Sequence

from bench.core.exceptions import ConfigError
from server_under_test.config import (
    CONFIG_KEYS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    ServerConfig,
    list_presets,
    load_config,
)
from server_under_test.server import ChatServer

EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options; ``bench serve`` adds the same ones to its subcommand."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port, 0 picks a free one (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="PRESET_OR_FILE",
        help=f"a preset ({', '.join(list_presets())}) or a TOML file (default: default)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override one config key (repeatable), e.g. --set fanout=naive",
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The config the parsed options describe; raises ConfigError."""
    return load_config(args.config, [*args.overrides, f"host={args.host}", f"port={args.port}"])


def raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: every WebSocket is a file descriptor."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve_from_args(args: argparse.Namespace) -> int:
    """Run the server the options describe; the exit code (2 for a bad config or a busy port)."""
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"error: bad config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    raise_open_file_limit()
    if config.broker == "redis":
        return serve_cluster(config, args.log_level)
    server = ChatServer(config)

    def announce(url: str) -> None:
        print(f"chat server listening on {url} (preset {config.preset})", flush=True)

    try:
        server.run(announce)
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, sqlite3.Error) as exc:
        print(f"error: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    return 0


def serve_cluster(config: ServerConfig, log_level: str) -> int:
    """Cluster mode (docs/CLUSTER.md): the supervisor, its workers and Redis; one banner line."""
    from server_under_test.supervisor import Supervisor

    supervisor = Supervisor(config, log_level)

    def announce(url: str, redis: str) -> None:
        print(
            f"chat server listening on {url} (preset {config.preset}, {supervisor.count} workers, redis {redis})",
            flush=True,
        )

    try:
        return supervisor.run(announce)
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
    except ConfigError as exc:
        print(f"error: cannot start: {exc}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server_under_test",
        description="The bundled chat server (protocol and config keys: docs/PROTOCOL.md).",
        epilog=f"config keys for --set: {', '.join(sorted(CONFIG_KEYS))}",
    )
    add_arguments(parser)
    return serve_from_args(parser.parse_args(argv))
