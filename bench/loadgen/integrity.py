"""Delivery integrity: what each receiver got against what it should have got. Pure, no I/O.

A receiver's *window* on a channel opens when SUBSCRIBED arrives and closes when the user leaves (or
stays open to the end of the run). Reconnects keep the window open: the catch-up through history is
supposed to fill the outage, so nothing is excused. What the window is owed is found one of two ways
(``method``):

- ``server_ids`` (exact; when SUBSCRIBED carries an integer ``lastMessageId`` = ``start_id``): every
  acknowledged id on the channel in ``(start_id, end_id]``, ``end_id`` the highest id it saw.
- ``send_times`` (when the server gives no lastMessageId; ids may be absent, global or not integers):
  every message published after the receiver's confirmation (``confirmed_us``) and before it left
  (``left_us``), by the publishers' send times in the tags, on one clock (the tags and these times
  carry the same clock offset). Messages sent between its SUBSCRIBE (``subscribe_sent_us``) and the
  confirmation, or in the last ``LEAVE_BOUNDARY_US`` before it left, are *uncertain*: not owed, and
  not lost when missing; delivered, they count as delivered (and expected).

Inside a window, each publisher's stream (the ``publisher`` and ``seq`` of the benchmark tag) is
tracked by its highest sequence number and the set of gaps below it, so the common in-order message
costs one comparison. A repeat of a sequence number is a duplicate; one that fills a gap is
reordered (live) or recovered (catch-up; history overlapping live delivery is expected and not a
duplicate).

Expected deliveries come from the publishers' side (``expected_for_windows``): their acknowledged ids,
or their send times per stream (``Sends``), and a window is owed at least what it got in its range.
``lost`` is the sum of each window's shortfall. A publish whose connection broke before it was confirmed,
and that the history does not hold after the reconnect, was not accepted by the server: it is owed to
nobody (``bench.loadgen.user``; ``not_accepted`` in the result).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

LOSSY_SAMPLE = 10  # windows with losses listed in the result, for diagnosis
SERVER_IDS: Final = "server_ids"
SEND_TIMES: Final = "send_times"
LEAVE_BOUNDARY_US: Final = 1_000_000  # sent this close to a receiver's leave: may still be in flight
_NEVER: Final = 2**62  # a time after every other

# Per channel, per publisher stream: (first seq, send time in us of each seq from it on; 0: never sent).
Sends = dict[str, dict[str, tuple[int, "np.ndarray[Any, np.dtype[np.int64]]"]]]


class _Stream:
    __slots__ = ("high", "low", "missing")

    def __init__(self, seq: int) -> None:
        self.high = self.low = seq
        self.missing: set[int] = set()


@dataclass(slots=True, eq=False)
class Window:
    """One receiver's presence on one channel, and what arrived in it."""

    channel: str
    start_id: int | None
    subscribe_sent_us: int = 0  # when its SUBSCRIBE went (tag clock)
    confirmed_us: int = 0  # when the confirmation arrived (tag clock)
    own_prefix: str | None = None  # its own streams, not owed to it (a protocol without echo)
    left_us: int | None = None
    end_id: int | None = None
    delivered: int = 0
    duplicated: int = 0
    reordered: int = 0
    recovered: int = 0
    max_id: int | None = None
    streams: dict[str, _Stream] = field(default_factory=dict)
    gaps: int = 0  # messages missing from its streams now (kept as they change: read every second, live)

    @property
    def method(self) -> str:
        return SEND_TIMES if self.start_id is None else SERVER_IDS

    def owes(self, message_id: object, sent_us: int = 0) -> bool:
        """Whether a message falls inside the window: by its server id, or its send time without one."""
        start = self.start_id
        if start is None:
            return sent_us > self.subscribe_sent_us
        return not isinstance(message_id, int) or message_id > start

    def record(self, publisher: str, seq: int, message_id: object, sent_us: int = 0, *, live: bool = True) -> bool:
        """Count one tagged message; returns True when it was new (not a duplicate or outside)."""
        stream = self.streams.get(publisher)
        # The common case first: the next message of a known stream, so inside the window (its send time is
        # later than the stream's previous one; by id, it is the newest so far). The rest takes the full path.
        if stream is not None and seq == stream.high + 1:
            max_id = self.max_id
            if self.start_id is None:
                stream.high = seq
            elif message_id.__class__ is int and max_id is not None and message_id > max_id:
                stream.high = seq
                self.max_id = message_id
            else:
                return self._record(stream, publisher, seq, message_id, sent_us, live)
            self.delivered += 1
            if not live:
                self.recovered += 1
            return True
        return self._record(stream, publisher, seq, message_id, sent_us, live)

    def _record(
        self, stream: _Stream | None, publisher: str, seq: int, message_id: object, sent_us: int, live: bool
    ) -> bool:
        if not self.owes(message_id, sent_us):
            return False
        if isinstance(message_id, int) and (self.max_id is None or message_id > self.max_id):
            self.max_id = message_id
        if stream is None:
            self.streams[publisher] = _Stream(seq)
        elif seq == stream.high + 1:
            stream.high = seq
        elif seq > stream.high:
            stream.missing.update(range(stream.high + 1, seq))
            self.gaps += seq - stream.high - 1
            stream.high = seq
        elif seq < stream.low:  # reordered ahead of the first one seen
            stream.missing.update(range(seq + 1, stream.low))
            self.gaps += stream.low - seq - 1
            stream.low = seq
            if live:
                self.reordered += 1
        elif seq in stream.missing:
            stream.missing.discard(seq)
            self.gaps -= 1
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

    def close(self, left_us: int | None = None) -> None:
        """The user left (at ``left_us``, tag clock): the window ends at the highest id it saw."""
        if self.end_id is None:
            self.end_id = self.max_id if self.max_id is not None else self.start_id
        if self.left_us is None:
            self.left_us = left_us

    def report(self) -> dict[str, Any]:
        """The JSON-safe summary that crosses to the master (with the streams seen, by send times)."""
        report: dict[str, Any] = {
            "channel": self.channel,
            "method": self.method,
            "start_id": self.start_id,
            "end_id": self.end_id,
            "delivered": self.delivered,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "recovered": self.recovered,
            "gaps": self.gaps,
        }
        if self.start_id is None:
            report.update(
                subscribe_sent_us=self.subscribe_sent_us,
                confirmed_us=self.confirmed_us,
                left_us=self.left_us,
                own_prefix=self.own_prefix,
                streams={p: [s.low, s.high, sorted(s.missing)] for p, s in self.streams.items()},
            )
        return report


def count_in_range(sorted_ids: list[int], start: int | None, end: int | None) -> int:
    """How many of ``sorted_ids`` lie in ``(start, end]`` (None: unbounded)."""
    lo = 0 if start is None else bisect.bisect_right(sorted_ids, start)
    hi = len(sorted_ids) if end is None else bisect.bisect_right(sorted_ids, end)
    return max(0, hi - lo)


@dataclass(slots=True, frozen=True)
class SendTimeCount:
    """What one window was owed by send times: owed (expected), missing from it (lost), uncertain."""

    expected: int = 0
    lost: int = 0
    uncertain: int = 0


def owed_by_send_times(window: dict[str, Any], streams: dict[str, tuple[int, Any]]) -> SendTimeCount:
    """A ``send_times`` window's count against each publisher stream's send times on its channel."""
    subscribed, confirmed = window["subscribe_sent_us"], window["confirmed_us"]
    left = _NEVER if window["left_us"] is None else window["left_us"]
    cut = _NEVER if window["left_us"] is None else left - LEAVE_BOUNDARY_US
    own, seen = window.get("own_prefix"), window["streams"]
    expected = lost = uncertain = 0
    for publisher, (first, times) in streams.items():
        if own and publisher.startswith(own):
            continue
        owed = (times > confirmed) & (times <= cut)
        edge = (times > subscribed) & (times <= left) & ~owed
        got = np.zeros(len(times), dtype=bool)
        if publisher in seen:
            low, high, missing = seen[publisher]
            got[max(0, low - first) : max(0, high - first + 1)] = True
            got[[m - first for m in missing if 0 <= m - first < len(times)]] = False
        expected += int(owed.sum()) + int((edge & got).sum())
        lost += int((owed & ~got).sum())
        uncertain += int((edge & ~got).sum())
    return SendTimeCount(expected, lost, uncertain)


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
    uncertain: int = 0
    methods: dict[str, int] = field(default_factory=dict)  # windows per method

    @property
    def method(self) -> str | None:
        """``server_ids``, ``send_times``, ``mixed``, or None without windows."""
        return None if not self.methods else next(iter(self.methods)) if len(self.methods) == 1 else "mixed"


def expected_for_windows(
    windows: list[dict[str, Any]],
    acked_ids: dict[str, list[int]],
    unacked: dict[str, int],
    sends: Sends | None = None,
) -> IntegrityTotals:
    """Totals over window reports, given each channel's acknowledged ids (sorted) and unacked publishes,
    and (for ``send_times`` windows) each channel's publisher streams' send times.

    By ids, a publish never acknowledged is owed to every window still open on its channel at the end,
    and each window is owed at least what it received in its range (a message a receiver got was
    accepted, acknowledged to its publisher or not), so one window's surplus never hides another's loss:
    ``lost`` is the sum of each window's shortfall.
    """
    expected = delivered = lost = duplicated = reordered = recovered = gaps = uncertain = 0
    unacked_total = sum(unacked.values())
    lossy: list[dict[str, Any]] = []
    methods: dict[str, int] = {}
    for window in windows:
        channel = window["channel"]
        method = window.get("method", SERVER_IDS)
        methods[method] = methods.get(method, 0) + 1
        if method == SEND_TIMES:
            count = owed_by_send_times(window, (sends or {}).get(channel, {}))
            owed, missing = count.expected, count.lost
            uncertain += count.uncertain
        else:
            owed = count_in_range(acked_ids.get(channel, []), window["start_id"], window["end_id"])
            if window["end_id"] is None:
                owed += unacked.get(channel, 0)
            owed = max(owed, window["delivered"])
            missing = owed - window["delivered"]
        expected += owed
        lost += max(0, missing)
        if missing > 0 and len(lossy) < LOSSY_SAMPLE:
            lossy.append({**{k: v for k, v in window.items() if k != "streams"}, "expected": owed})
        delivered += window["delivered"]
        duplicated += window["duplicated"]
        reordered += window["reordered"]
        recovered += window["recovered"]
        gaps += window["gaps"]
    return IntegrityTotals(
        expected=expected,
        delivered=delivered,
        lost=lost,
        duplicated=duplicated,
        reordered=reordered,
        recovered=recovered,
        gaps=gaps,
        unacked=unacked_total,
        windows=len(windows),
        lossy=lossy,
        uncertain=uncertain,
        methods=methods,
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
