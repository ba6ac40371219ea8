"""Scenario parameters as Locust command-line options (shown in the web UI too).

Every option is spelled ``--kebab-case``; ``bench run X --param k=v`` maps to ``--k v``. The common
options below apply to every scenario; each scenario adds its own table of ``Option``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.core.schema import AUTH_MODES, SATURATION_PERCENT
from bench.loadgen.backoff import JITTERS
from bench.loadgen.wire import DEFAULT_WIRE, WIRES


@dataclass(frozen=True, slots=True)
class Option:
    """One scenario parameter: ``--name`` with a type, a default and a help line."""

    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    secret: bool = False  # masked in the web UI and in result files

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


COMMON: tuple[Option, ...] = (
    Option(
        "protocol",
        str,
        DEFAULT_WIRE,
        f"the target's wire protocol: {', '.join(sorted(WIRES))}, a shipped dialect (seed) or a dialect FILE.toml",
    ),
    Option("wire-config", str, "", "TOML file whose [protocol] table sets the protocol's options (docs/ADAPTERS.md)"),
    Option("wire-set", str, "", "protocol options as name=value,name=value (over --wire-config)"),
    Option("ws-path", str, "", "WebSocket path on the target (empty: the protocol's, /ws or /socket.io/)"),
    Option("auth", str, "login", "token source: login (GET /auth/token), secret (mint HS256), none", AUTH_MODES),
    Option("user", str, "", "log every user in as this one (HTTP login, the protocol's own CONNECT); empty: its id"),
    Option("password", str, "bench", "password for --auth login and the protocol's own CONNECT", secret=True),
    Option("jwt-secret", str, "", "shared HS256 secret for --auth secret", secret=True),
    Option("ws-debug-users", int, 0, "log every frame sent and received by the first N users (0: off)"),
    Option("jitter", str, "none", "reconnect jitter: none (the seed's), full, equal, decorrelated", JITTERS),
    Option("reconnect", str, "on", "reconnect with the seed's backoff after a drop (on|off)", ("on", "off")),
    Option("drain-seconds", float, 2.0, "at stop, publishers stop and receivers drain for up to this long"),
    Option("connect-timeout", float, 10.0, "seconds for TCP + TLS + upgrade"),
    Option("tls-insecure", str, "off", "wss:// without certificate checks (on|off)", ("on", "off")),
    Option("user-prefix", str, "u", "prefix of user ids (u0-1, u0-2, ...: worker index, then number)"),
    Option("channel-prefix", str, "bench-", "prefix of channel ids"),
    Option(
        "clock-sync",
        str,
        "auto",
        "server: put tags and receipt times on the server's clock (offset measured from SUBSCRIBED replies), "
        "for publishers and receivers on different machines; auto: server when workers run on several hosts",
        ("auto", "none", "server"),
    ),
    Option("saturation-percent", float, SATURATION_PERCENT, "a load-generator process above this CPU is saturated"),
)


def register(parser: Any, options: tuple[Option, ...]) -> None:
    """Add ``options`` to Locust's argument parser (Locust's groups cannot show in the web UI)."""
    for option in options:
        kwargs: dict[str, Any] = {"type": option.kind, "default": option.default, "help": option.help}
        if option.choices:
            kwargs["choices"] = option.choices
        parser.add_argument(f"--{option.name}", include_in_web_ui=True, is_secret=option.secret, **kwargs)


def collect(parsed: Any, options: tuple[Option, ...]) -> dict[str, Any]:
    """The values of ``options`` in Locust's parsed options, keyed by ``--name`` without dashes."""
    return {option.name: _coerce(option, getattr(parsed, option.dest, option.default)) for option in options}


def _coerce(option: Option, value: Any) -> Any:
    """Values typed in the web UI arrive as strings."""
    if value is None or isinstance(value, option.kind):
        return value
    return option.kind(value)


SECRETS = frozenset(option.name for option in COMMON if option.secret)


def secret_free(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters for result files: secrets masked."""
    return {k: ("***" if k in SECRETS and v else v) for k, v in params.items()}
