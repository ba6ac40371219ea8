"""HS256 JWTs: the one place tokens are minted and verified (server, load users and the tool share it).

Claims: ``sub`` (the user id), ``iat``, ``exp`` and, optionally, ``channels`` (fnmatch patterns).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Final

import jwt

from bench.core.exceptions import AuthError

ALGORITHM: Final = "HS256"
DEFAULT_TTL_S: Final = 24 * 3600


def mint(user_id: str, secret: str, *, ttl_s: int = DEFAULT_TTL_S, channels: tuple[str, ...] | None = None) -> str:
    """A signed token for ``user_id`` that expires ``ttl_s`` seconds from now."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if channels is not None:
        claims["channels"] = list(channels)
    with warnings.catch_warnings():  # a short benchmark secret is the user's business
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(token: str | None, secret: str) -> dict[str, Any]:
    """The claims of a valid token (``sub`` and ``exp`` required), or AuthError (missing, forged, expired)."""
    if not token:
        raise AuthError("missing token", status=401)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            claims: dict[str, Any] = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
            )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired", status=401) from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}", status=401) from None
    return claims
