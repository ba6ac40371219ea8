"""The content-filter hook and mention detection for PUBLISH."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Protocol

MENTION: Final = re.compile(r"@([A-Za-z0-9_.\-]{1,64})")


class ContentFilter(Protocol):
    """Decides whether a message may be published: the reason it is refused, or None."""

    def check(self, content: str) -> str | None: ...


class WordFilter:
    """Refuses content that contains one of the configured words (whole words, any case)."""

    def __init__(self, words: Iterable[str]) -> None:
        cleaned = sorted({word.strip().lower() for word in words if word.strip()}, key=len, reverse=True)
        alternatives = "|".join(re.escape(word) for word in cleaned)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE) if cleaned else None

    def check(self, content: str) -> str | None:
        if self._pattern is None:
            return None
        found = self._pattern.search(content)
        return None if found is None else f"content contains a blocked word ({found.group(0).lower()!r})"


def mentions(content: str) -> set[str]:
    """The user ids mentioned as ``@userId`` in a message."""
    if "@" not in content:
        return set()
    return {match.group(1).rstrip(".-") for match in MENTION.finditer(content)}
