"""The one integer rule of the protocol: ids, ``before``/``after``/``limit`` and ``messageId``.

An integer on the wire is either a JSON integer or a string of ASCII digits ``0-9`` (no sign, no spaces,
no ``_``, no other script's digits), and it lies in ``0 <= n < 2**63`` (what SQLite and every 64-bit
peer store). Python's ``int()`` accepts ``" 5"``, ``"+5"``, ``"5_0"`` and fullwidth or Arabic-Indic
digits; this does not.
"""

from __future__ import annotations

from typing import Final

LIMIT: Final = 2**63
"""Integers are below this (SQLite's INTEGER is signed 64-bit)."""
MAX_DIGITS: Final = len(str(LIMIT - 1))
_DIGITS: Final = frozenset("0123456789")


def parse_digits(text: str) -> int:
    """The value of a string of ASCII digits in range; ValueError for anything else."""
    if not text or len(text) > MAX_DIGITS or not _DIGITS.issuperset(text):
        raise ValueError("must be ASCII digits only")
    value = int(text)
    if value >= LIMIT:
        raise ValueError(f"must be below 2**63, not {text}")
    return value


def parse_integer(value: object) -> int:
    """A JSON integer (not a bool or float) or a digit string, in ``0 <= n < 2**63``; ValueError otherwise."""
    if isinstance(value, str):
        return parse_digits(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < LIMIT:
            raise ValueError(f"must be in 0 .. 2**63 - 1, not {value}")
        return value
    raise ValueError("must be an integer")
