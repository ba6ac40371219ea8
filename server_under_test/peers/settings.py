"""The peers' settings: the subset of the bundled server's config that a peer honours, same defaults.

The defaults are the bundled server's constants (``server_under_test.config``), so that a token issued
by one server is accepted by the others and paging limits agree. ``as_cli_args`` gives the same
settings as command-line options, which every peer (Python or Node) accepts.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from server_under_test import config


@dataclass(frozen=True, kw_only=True, slots=True)
class PeerSettings:
    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_PORT
    password: str = config.DEFAULT_PASSWORD
    jwt_secret: str = config.DEFAULT_JWT_SECRET
    token_ttl: int = config.DEFAULT_TOKEN_TTL_S
    history_limit: int = config.DEFAULT_HISTORY_PER_CHANNEL
    page_limit: int = config.DEFAULT_HISTORY_PAGE_SIZE
    max_page_limit: int = config.DEFAULT_HISTORY_PAGE_MAX
    max_message_bytes: int = config.DEFAULT_MAX_MESSAGE_BYTES
    max_buffered_bytes: int = config.DEFAULT_WRITE_BUFFER_BYTES
    shutdown_timeout: float = config.DEFAULT_SHUTDOWN_TIMEOUT_S
    retry_after_ms: int = config.DEFAULT_SHUTDOWN_RETRY_AFTER_MS
    max_subscriptions: int = config.DEFAULT_MAX_SUBSCRIPTIONS
    ping_interval: float = config.DEFAULT_PING_INTERVAL_S

    def as_cli_args(self) -> list[str]:
        """``--name value`` for every setting (names with dashes), as the peers' command lines take them."""
        args: list[str] = []
        for field in dataclasses.fields(self):
            args += [f"--{field.name.replace('_', '-')}", str(getattr(self, field.name))]
        return args


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--name`` option per setting, defaulting to the bundled server's value."""
    for field in dataclasses.fields(PeerSettings):
        kind = {"int": int, "float": float}.get(str(field.type), str)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=field.default)


def settings_from_args(args: argparse.Namespace) -> PeerSettings:
    return PeerSettings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(PeerSettings)})
