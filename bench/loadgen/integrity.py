"""Delivery integrity: what each receiver got against what it should have got. Pure, no I/O.

A receiver's *window* on a channel opens when SUBSCRIBED arrives (``start_id`` = the channel's
``lastMessageId`` then: every later message is owed to it) and closes when the user leaves
(``end_id`` = the highest id it saw, or None if it stayed to the end of the run). Reconnects keep the
window open: the catch-up through history is supposed to fill the outage, so nothing is excused.

Inside a window, each publisher's stream (the ``publisher`` and ``seq`` of the benchmark tag) is
tracked by its highest sequence number and the set of gaps below it, so the common in-order message
costs one comparison. A repeat of a sequence number is a duplicate; one that fills a gap is
reordered (live) or recovered (catch-up; history overlapping live delivery is expected and not a
duplicate).

Expected deliveries come from the publishers' side: each publish acknowledged by its echo carries
its server id, so a window is owed every acknowledged id on its channel in ``(start_id, end_id]``
(``expected_for_windows``). ``lost = expected - delivered``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

LOSSY_SAMPLE = 10  # windows with losses listed in the result, for diagnosis


class _Stream:
    __slots__ = ("high", "missing")

    def __init__(self, seq: int) -> None:
        self.high = seq
        self.missing: set[int] = set()


@dataclass(slots=True, eq=False)
class Window:
    """One receiver's presence on one channel, and what arrived in it."""

    channel: str
    start_id: int | None
    end_id: int | None = None
    delivered: int = 0
    duplicated: int = 0
    reordered: int = 0
    recovered: int = 0
    max_id: int | None = None
    streams: dict[str, _Stream] = field(default_factory=dict)

    def owes(self, message_id: object) -> bool:
        """Whether a message with this server id falls inside the window."""
        start = self.start_id
        return start is None or not isinstance(message_id, int) or message_id > start

    def record(self, publisher: str, seq: int, message_id: object, *, live: bool = True) -> bool:
        """Count one tagged message; returns True when it was new (not a duplicate or outside)."""
        stream = self.streams.get(publisher)
        max_id = self.max_id
        # The common case first: the next message of a known stream with the newest id so far (so inside
        # the window, since max_id is). Everything else takes the full path.
        if (
            stream is not None
            and seq == stream.high + 1
            and message_id.__class__ is int
            and max_id is not None
            and message_id > max_id
        ):
            stream.high = seq
            self.max_id = message_id
            self.delivered += 1
            if not live:
                self.recovered += 1
            return True
        return self._record(stream, publisher, seq, message_id, live)

    def _record(self, stream: _Stream | None, publisher: str, seq: int, message_id: object, live: bool) -> bool:
        if not self.owes(message_id):
            return False
        if isinstance(message_id, int) and (self.max_id is None or message_id > self.max_id):
            self.max_id = message_id
        if stream is None:
            self.streams[publisher] = _Stream(seq)
        elif seq == stream.high + 1:
            stream.high = seq
        elif seq > stream.high:
            stream.missing.update(range(stream.high + 1, seq))
            stream.high = seq
        elif seq in stream.missing:
            stream.missing.discard(seq)
            if live:
                self.reordered += 1
        else:
            if live:
                self.duplicated += 1
            return False
        self.delivered += 1
        if not live:
            self.recovered += 1
        return True

    def close(self) -> None:
        """The user left: the window ends at the highest id it saw."""
        if self.end_id is None:
            self.end_id = self.max_id if self.max_id is not None else self.start_id

    @property
    def gaps(self) -> int:
        return sum(len(stream.missing) for stream in self.streams.values())

    def report(self) -> dict[str, Any]:
        """The JSON-safe summary that crosses to the master."""
        return {
            "channel": self.channel,
            "start_id": self.start_id,
            "end_id": self.end_id,
            "delivered": self.delivered,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "recovered": self.recovered,
            "gaps": self.gaps,
        }


def count_in_range(sorted_ids: list[int], start: int | None, end: int | None) -> int:
    """How many of ``sorted_ids`` lie in ``(start, end]`` (None: unbounded)."""
    lo = 0 if start is None else bisect.bisect_right(sorted_ids, start)
    hi = len(sorted_ids) if end is None else bisect.bisect_right(sorted_ids, end)
    return max(0, hi - lo)


@dataclass(slots=True, frozen=True)
class IntegrityTotals:
    expected: int
    delivered: int
    lost: int
    duplicated: int
    reordered: int
    recovered: int
    gaps: int
    unacked: int
    windows: int
    lossy: list[dict[str, Any]]


def expected_for_windows(
    windows: list[dict[str, Any]], acked_ids: dict[str, list[int]], unacked: dict[str, int]
) -> IntegrityTotals:
    """Totals over window reports, given each channel's acknowledged ids (sorted) and unacked publishes.

    A publish never acknowledged is owed to every window still open on its channel at the end.
    """
    expected = delivered = duplicated = reordered = recovered = gaps = 0
    open_per_channel: dict[str, int] = {}
    lossy: list[dict[str, Any]] = []
    for window in windows:
        channel = window["channel"]
        owed = count_in_range(acked_ids.get(channel, []), window["start_id"], window["end_id"])
        expected += owed
        if owed > window["delivered"] and len(lossy) < LOSSY_SAMPLE:
            lossy.append({**window, "expected": owed})
        delivered += window["delivered"]
        duplicated += window["duplicated"]
        reordered += window["reordered"]
        recovered += window["recovered"]
        gaps += window["gaps"]
        if window["end_id"] is None:
            open_per_channel[channel] = open_per_channel.get(channel, 0) + 1
    unacked_total = sum(unacked.values())
    expected += sum(count * open_per_channel.get(channel, 0) for channel, count in unacked.items())
    return IntegrityTotals(
        expected=expected,
        delivered=delivered,
        lost=max(0, expected - delivered),
        duplicated=duplicated,
        reordered=reordered,
        recovered=recovered,
        gaps=gaps,
        unacked=unacked_total,
        windows=len(windows),
        lossy=lossy,
    )


def page_faults(ids: list[int], before: int | None) -> tuple[int, int]:
    """(duplicates, gaps) of one history page asked for ``before`` (None: the newest page). Ids are per
    channel and consecutive (PROTOCOL.md), so a page before X holds ..., X-2, X-1 with nothing missing."""
    if not ids:
        return 0, 0
    unique = set(ids)
    top = max(unique)
    duplicates = len(ids) - len(unique) + (sum(1 for i in unique if i >= before) if before is not None else 0)
    gaps = top - min(unique) + 1 - len(unique) + (max(0, before - 1 - top) if before is not None else 0)
    return duplicates, gaps
