"""Logins, JWTs and the channel access rule.

Tokens are HS256 JWTs with ``sub`` (the user id), ``iat``, ``exp`` and, optionally, ``channels``: a list of
``fnmatch`` patterns that restricts the channels the user may use. Without that claim every channel is
allowed, except that a direct-message channel ``dm:<a>:<b>`` is only ever open to users ``a`` and ``b``.
"""

from __future__ import annotations

import base64
import fnmatch
import hmac
import time
import tomllib
from dataclasses import dataclass
from typing import Final

from bench.core import tokens
from bench.core.exceptions import AuthError, ConfigError

DM_PREFIX: Final = "dm:"
MAX_USER_ID: Final = 64
VERIFIED_CACHE: Final = 4096
"""Tokens remembered once verified: a keep-alive client sends the same one with every history page."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified token: who the user is and which channel patterns it allows (None: all)."""

    user_id: str
    channels: tuple[str, ...] | None
    expires_at: int

    def may_use(self, channel_id: str) -> bool:
        return channel_allowed(self.user_id, self.channels, channel_id)


def channel_allowed(user_id: str, patterns: tuple[str, ...] | None, channel_id: str) -> bool:
    """The server's channel rule (docs/PROTOCOL.md, "Channel access")."""
    if channel_id.startswith(DM_PREFIX) and user_id not in channel_id[len(DM_PREFIX) :].split(":"):
        return False
    return patterns is None or any(fnmatch.fnmatchcase(channel_id, pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class UserRecord:
    password: str
    channels: tuple[str, ...] | None


def load_users(path: str) -> dict[str, UserRecord]:
    """Read a users file: TOML tables ``[users.NAME]`` with ``password`` and optional ``channels``."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read users file {path!r}: {exc}", key="users_file") from None
    users: dict[str, UserRecord] = {}
    for name, entry in data.get("users", {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
            raise ConfigError(f"user {name!r} needs a string 'password'", key="users_file")
        channels = entry.get("channels")
        if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
            raise ConfigError(f"user {name!r}: 'channels' must be a list of strings", key="users_file")
        users[name] = UserRecord(entry["password"], None if channels is None else tuple(channels))
    return users


class Authenticator:
    """Checks passwords, mints tokens and verifies them."""

    def __init__(self, *, secret: str, password: str, ttl_s: int, users_file: str | None = None) -> None:
        self._secret = secret
        self._password = password
        self.ttl_s = ttl_s
        self._users = load_users(users_file) if users_file else None
        self._verified: dict[str, Identity] = {}  # insertion order: the oldest goes first when full

    def login_basic(self, authorization: str | None) -> tuple[str, str]:
        """Check ``Authorization: Basic ...`` credentials; return (user id, token) or raise AuthError."""
        return self.login(*parse_basic(authorization))

    def login(self, user: str, password: str) -> tuple[str, str]:
        """Check a user name and password; return (user id, token) or raise AuthError."""
        if not user or len(user) > MAX_USER_ID or ":" in user:
            raise AuthError("user name must be 1 to 64 characters without ':'", status=401)
        if self._users is None:
            expected, channels = self._password, None
        else:
            record = self._users.get(user)
            if record is None:
                raise AuthError("unknown user or wrong password", status=401)
            expected, channels = record.password, record.channels
        if not hmac.compare_digest(password.encode(), expected.encode()):
            raise AuthError("unknown user or wrong password", status=401)
        return user, self.mint(user, channels)

    def mint(self, user_id: str, channels: tuple[str, ...] | None = None, ttl_s: int | None = None) -> str:
        return tokens.mint(user_id, self._secret, ttl_s=self.ttl_s if ttl_s is None else ttl_s, channels=channels)

    def verify(self, token: str | None) -> Identity:
        """Decode and check a token, or raise AuthError (missing, forged, expired, malformed). A token
        already verified is not decoded again until it expires (only valid tokens are remembered)."""
        if token:
            known = self._verified.pop(token, None)
            if known is not None and known.expires_at > time.time():
                self._verified[token] = known
                return known
        identity = self._verify(token)
        assert token is not None
        if len(self._verified) >= VERIFIED_CACHE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = identity
        return identity

    def _verify(self, token: str | None) -> Identity:
        claims = tokens.verify(token, self._secret)
        user, channels = claims["sub"], claims.get("channels")
        if not isinstance(user, str) or not user or len(user) > MAX_USER_ID:
            raise AuthError("invalid token: bad 'sub'", status=401)
        if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
            raise AuthError("invalid token: 'channels' must be a list of strings", status=401)
        return Identity(user, None if channels is None else tuple(channels), int(claims["exp"]))


def parse_basic(authorization: str | None) -> tuple[str, str]:
    """(user, password) from an ``Authorization: Basic`` header, or raise AuthError."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthError("send 'Authorization: Basic base64(user:password)'", status=401)
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except ValueError:  # binascii.Error, UnicodeDecodeError, and a str that is not ASCII ("éééé")
        raise AuthError("malformed Basic credentials", status=401) from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise AuthError("malformed Basic credentials", status=401)
    return user, password


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token from ``Authorization: Bearer`` or, failing that, the ``token`` query parameter."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return query_token
