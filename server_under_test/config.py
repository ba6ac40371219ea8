"""The server's configuration: one typed, keyword-only dataclass, TOML presets and ``--set`` overrides.

A config comes from a preset (``server_under_test/presets/NAME.toml``) or a TOML file of the same flat
keys (a file may say ``extends = "PRESET"``), then ``key=value`` overrides. Every error is a
:class:`bench.core.exceptions.ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, get_type_hints

from bench.core.exceptions import ConfigError

PRESETS_DIR: Final = Path(__file__).with_name("presets")
DEFAULT_PRESET: Final = "default"

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8765
DEFAULT_FANOUT: Final = "batched"
DEFAULT_JSON: Final = "orjson"
DEFAULT_LOOP: Final = "uvloop"
DEFAULT_BATCH_WINDOW_MS: Final = 0.0
DEFAULT_MAX_BATCH: Final = 64
DEFAULT_HISTORY: Final = "memory"
DEFAULT_HISTORY_PATH: Final = "chat-history.sqlite3"
DEFAULT_HISTORY_PER_CHANNEL: Final = 10_000
DEFAULT_HISTORY_MEMORY_MB: Final = 256.0
DEFAULT_HISTORY_PAGE_SIZE: Final = 20
DEFAULT_HISTORY_PAGE_MAX: Final = 100
DEFAULT_RATE_LIMIT_PER_S: Final = 5_000.0
DEFAULT_RATE_LIMIT_BURST: Final = 10_000
DEFAULT_RATE_LIMIT_CLOSE_AFTER: Final = 100
DEFAULT_RATE_LIMIT_WINDOW_S: Final = 10.0
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024
DEFAULT_WRITE_BUFFER_BYTES: Final = 1024 * 1024
DEFAULT_SLOW_CONSUMER: Final = "disconnect"
DEFAULT_JWT_SECRET: Final = "chatbench-shared-secret-change-me-in-production"
DEFAULT_PASSWORD: Final = "bench"
DEFAULT_TOKEN_TTL_S: Final = 3600
DEFAULT_SHUTDOWN_TIMEOUT_S: Final = 5.0
DEFAULT_SHUTDOWN_RETRY_AFTER_MS: Final = 1000
DEFAULT_MAX_SUBSCRIPTIONS: Final = 1000
DEFAULT_PRESENCE_LIST_MAX: Final = 100
DEFAULT_PING_INTERVAL_S: Final = 20.0
DEFAULT_CLOSE_TIMEOUT_S: Final = 2.0
DEFAULT_CORS_ORIGINS: Final = ("*",)
DEFAULT_HTTP_KEEPALIVE_S: Final = 5.0
DEFAULT_HTTP_MAX_BODY_BYTES: Final = 64 * 1024
DEFAULT_WORKERS: Final = 1  # 0: one worker per core it may run on (os.sched_getaffinity)
DEFAULT_BROKER: Final = "none"
DEFAULT_REDIS_URL: Final = "auto"  # a private redis-server for the server's lifetime

FANOUTS: Final = ("naive", "broadcast", "batched")
JSON_NAMES: Final = ("json", "orjson")
LOOP_NAMES: Final = ("asyncio", "uvloop", "auto")
HISTORY_NAMES: Final = ("memory", "sqlite")
SLOW_CONSUMER_POLICIES: Final = ("drop", "disconnect")
BROKER_NAMES: Final = ("none", "redis")
REDIS_URL_SCHEMES: Final = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerConfig:
    """Everything the server can be told; docs/PROTOCOL.md explains each behaviour."""

    preset: str = DEFAULT_PRESET
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    fanout: str = DEFAULT_FANOUT
    json: str = DEFAULT_JSON
    loop: str = DEFAULT_LOOP
    compression: bool = False
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS  # 0: flush at the end of each event-loop pass
    max_batch: int = DEFAULT_MAX_BATCH
    coalesce_writes: bool = True
    history: str = DEFAULT_HISTORY
    history_path: str = DEFAULT_HISTORY_PATH
    history_per_channel: int = DEFAULT_HISTORY_PER_CHANNEL
    history_memory_mb: float = DEFAULT_HISTORY_MEMORY_MB
    history_page_size: int = DEFAULT_HISTORY_PAGE_SIZE
    history_page_max: int = DEFAULT_HISTORY_PAGE_MAX
    rate_limit_per_s: float = DEFAULT_RATE_LIMIT_PER_S
    rate_limit_burst: int = DEFAULT_RATE_LIMIT_BURST
    rate_limit_close_after: int = DEFAULT_RATE_LIMIT_CLOSE_AFTER
    rate_limit_window_s: float = DEFAULT_RATE_LIMIT_WINDOW_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    write_buffer_bytes: int = DEFAULT_WRITE_BUFFER_BYTES
    slow_consumer: str = DEFAULT_SLOW_CONSUMER
    max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS
    presence: bool = True
    presence_list_max: int = DEFAULT_PRESENCE_LIST_MAX
    tls_cert: str | None = None
    tls_key: str | None = None
    jwt_secret: str = DEFAULT_JWT_SECRET
    password: str = DEFAULT_PASSWORD
    users_file: str | None = None
    token_ttl_s: int = DEFAULT_TOKEN_TTL_S
    content_filter: tuple[str, ...] = ()
    shutdown_timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    shutdown_retry_after_ms: int = DEFAULT_SHUTDOWN_RETRY_AFTER_MS
    ping_interval_s: float = DEFAULT_PING_INTERVAL_S
    close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    http_keepalive_s: float = DEFAULT_HTTP_KEEPALIVE_S
    http_max_body_bytes: int = DEFAULT_HTTP_MAX_BODY_BYTES
    workers: int = DEFAULT_WORKERS  # cluster mode (docs/CLUSTER.md); 0: one per core
    broker: str = DEFAULT_BROKER  # "redis": fan-out, ids, history and presence shared through Redis
    redis_url: str = DEFAULT_REDIS_URL  # "auto" or redis://host:port/db

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


_FIELD_TYPES: Final[dict[str, Any]] = get_type_hints(ServerConfig)
CONFIG_KEYS: Final = frozenset(_FIELD_TYPES) - {"preset"}
_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    "fanout": FANOUTS,
    "json": JSON_NAMES,
    "loop": LOOP_NAMES,
    "history": HISTORY_NAMES,
    "slow_consumer": SLOW_CONSUMER_POLICIES,
    "broker": BROKER_NAMES,
}
_NON_NEGATIVE: Final = frozenset(
    {
        "batch_window_ms",
        "rate_limit_per_s",
        "rate_limit_burst",
        "rate_limit_close_after",
        "port",
        "ping_interval_s",
        "shutdown_retry_after_ms",
        "workers",
    }
)
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_META_KEYS: Final = frozenset({"description", "extends"})
_REMOVED_KEYS: Final[dict[str, str]] = {
    key: "was removed: the batched fan-out flushes at the end of each event-loop pass, so batches grow "
    "only while the loop is busy; batch_window_ms (default 0) still paces a channel's flushes"
    for key in ("batch_window_max_ms", "fanout_busy_target")
}


def list_presets() -> list[str]:
    """The names of the presets that ship with the package."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.toml"))


def load_config(preset_or_path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> ServerConfig:
    """Build a config from a preset name or TOML file (None: the default preset) and ``key=value`` overrides."""
    name = preset_or_path or DEFAULT_PRESET
    values = _load_layered(name, seen=())
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"override {item!r} must look like key=value", key=key or None)
        values[key] = _coerce(key, _parse_scalar(raw.strip()))
    values["preset"] = _display_name(name)
    return _build(values)


def _display_name(name: str) -> str:
    return Path(name).stem if _looks_like_path(name) else name


def _looks_like_path(name: str) -> bool:
    return name.endswith(".toml") or "/" in name or "\\" in name


def _preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())}", key="preset")
    return path


def _load_layered(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
    if name in seen:
        raise ConfigError(f"'extends' loops through {' -> '.join((*seen, name))}", key="extends")
    path = Path(name) if _looks_like_path(name) else _preset_path(name)
    raw = _read_toml(path)
    base = _load_layered(str(raw["extends"]), (*seen, name)) if "extends" in raw else {}
    for key, value in raw.items():
        if key not in _META_KEYS:
            base[key] = _coerce(key, value)
    return base


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist", key="config") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {exc}", key="config") from None


def _parse_scalar(raw: str) -> Any:
    """A ``--set`` value: TOML syntax when it parses (``["a", "b"]``, ``1.5``, ``true``), else the text."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _coerce(key: str, value: Any) -> Any:
    if key in _REMOVED_KEYS:
        raise ConfigError(_REMOVED_KEYS[key], key=key)
    if key not in _FIELD_TYPES or key == "preset":
        close = difflib.get_close_matches(key, sorted(CONFIG_KEYS), n=1, cutoff=0.7)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown key; {hint}known keys: {', '.join(sorted(CONFIG_KEYS))}", key=key)
    kind = _FIELD_TYPES[key]
    try:
        result = _coerce_to(kind, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value {value!r}: {exc}", key=key) from None
    if key in _CHOICES and result not in _CHOICES[key]:
        raise ConfigError(f"must be one of {', '.join(_CHOICES[key])}, not {result!r}", key=key)
    numeric = isinstance(result, int | float) and not isinstance(result, bool)
    if numeric and (result < 0 or (result == 0 and key not in _NON_NEGATIVE)):
        raise ConfigError(f"must be {'>= 0' if key in _NON_NEGATIVE else '> 0'}, not {result!r}", key=key)
    return result


def _coerce_to(kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError("expected true or false")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("expected an integer")
        return int(value)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        return float(value)
    if kind is str:
        return str(value)
    if kind == str | None:
        return None if value in ("", "none", "None") else str(value)
    if kind == tuple[str, ...]:
        items = value if isinstance(value, list) else [part for part in str(value).split(",")]
        return tuple(str(item).strip() for item in items if str(item).strip())
    raise TypeError(f"unsupported field type {kind!r}")


def _build(values: dict[str, Any]) -> ServerConfig:
    config = ServerConfig(**values)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("tls_cert and tls_key go together", key="tls_cert" if config.tls_key else "tls_key")
    for key in ("tls_cert", "tls_key", "users_file"):
        path = getattr(config, key)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"file {path!r} does not exist", key=key)
    if config.history_page_size > config.history_page_max:
        raise ConfigError("must not exceed history_page_max", key="history_page_size")
    if config.redis_url != "auto" and not config.redis_url.startswith(REDIS_URL_SCHEMES):
        raise ConfigError(f"must be 'auto' or a redis:// URL, not {config.redis_url!r}", key="redis_url")
    if config.workers != 1 and config.broker == "none":
        raise ConfigError('more than one worker needs broker = "redis" to share channels', key="workers")
    return config


def worker_count(config: ServerConfig) -> int:
    """How many worker processes the config asks for (``workers = 0``: one per core this process may
    run on, so a server pinned with ``--server-cpus`` gets as many workers as it has cores)."""
    return config.workers or len(os.sched_getaffinity(0)) or 1


def describe(config: ServerConfig) -> dict[str, Any]:
    """The config as a JSON-safe dict (for logs and result files); the JWT secret and password are masked."""
    data = dataclasses.asdict(config)
    data["content_filter"] = list(config.content_filter)
    data["cors_origins"] = list(config.cors_origins)
    for secret in ("jwt_secret", "password"):
        data[secret] = "***"
    data["redis_url"] = re.sub(r"//[^@/]*@", "//***@", config.redis_url)  # a password in the URL
    return data
