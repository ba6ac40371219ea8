"""Integrity windows: in order, gaps, reordering, duplicates, catch-up, and the expected count."""

from __future__ import annotations

import pytest

from bench.loadgen.integrity import Window, count_in_range, expected_for_windows, page_faults


def test_in_order_stream_counts_each_message_once() -> None:
    window = Window("c", start_id=10)
    for seq, message_id in enumerate(range(11, 21), start=1):
        assert window.record("p", seq, message_id)
    assert (window.delivered, window.duplicated, window.reordered, window.gaps) == (10, 0, 0, 0)


def test_gap_then_late_arrival_is_reordered_and_repeat_is_duplicate() -> None:
    window = Window("c", start_id=0)
    window.record("p", 1, 1)
    window.record("p", 3, 3)
    assert window.gaps == 1
    assert window.record("p", 2, 2)
    assert not window.record("p", 2, 2)
    assert (window.delivered, window.reordered, window.duplicated, window.gaps) == (3, 1, 1, 0)


def test_catch_up_fills_gaps_as_recovered_and_overlap_is_not_a_duplicate() -> None:
    window = Window("c", start_id=0)
    window.record("p", 1, 1)
    window.record("p", 4, 4)  # 2 and 3 were missed during an outage
    for seq in (2, 3, 4):  # history after id 1 overlaps the live message 4
        window.record("p", seq, seq, live=False)
    assert (window.delivered, window.recovered, window.duplicated, window.reordered) == (4, 2, 0, 0)


def test_streams_of_different_publishers_are_independent() -> None:
    window = Window("c", start_id=0)
    for message_id, (publisher, seq) in enumerate([("a", 1), ("b", 1), ("a", 2), ("b", 2)], start=1):
        window.record(publisher, seq, message_id)
    assert (window.delivered, window.gaps, window.reordered) == (4, 0, 0)


def test_messages_at_or_before_the_subscription_are_not_owed() -> None:
    window = Window("c", start_id=5)
    assert not window.record("p", 5, 5)
    assert window.record("p", 6, 6)
    assert window.delivered == 1


def test_closed_window_ends_at_the_highest_id_seen() -> None:
    window = Window("c", start_id=2)
    window.record("p", 3, 3)
    window.record("p", 4, 4)
    window.close()
    assert window.end_id == 4


def test_count_in_range_is_half_open() -> None:
    ids = [1, 2, 3, 5, 8]
    assert count_in_range(ids, None, None) == 5
    assert count_in_range(ids, 2, None) == 3
    assert count_in_range(ids, 2, 5) == 2
    assert count_in_range(ids, 8, None) == 0


def test_expected_from_acked_ids_windows_and_unacked_publishes() -> None:
    acked = {"c": [1, 2, 3, 4, 5, 6], "d": [1, 2]}
    windows = [
        {"channel": "c", "start_id": 0, "end_id": None, "delivered": 6, "duplicated": 0, "reordered": 0,
         "recovered": 0, "gaps": 0},
        {"channel": "c", "start_id": 3, "end_id": None, "delivered": 2, "duplicated": 1, "reordered": 0,
         "recovered": 0, "gaps": 1},
        {"channel": "c", "start_id": 0, "end_id": 2, "delivered": 2, "duplicated": 0, "reordered": 0,
         "recovered": 0, "gaps": 0},
        {"channel": "d", "start_id": 0, "end_id": None, "delivered": 2, "duplicated": 0, "reordered": 1,
         "recovered": 0, "gaps": 0},
    ]  # fmt: skip
    totals = expected_for_windows(windows, acked, {"c": 1})
    # c: 6 + 3 + 2 owed, plus the unacked publish owed to the two windows still open; d: 2
    assert totals.expected == 6 + 3 + 2 + 2 + 2
    assert totals.delivered == 12
    assert totals.lost == 3
    assert (totals.duplicated, totals.reordered, totals.gaps, totals.unacked) == (1, 1, 1, 1)
    assert [w["start_id"] for w in totals.lossy] == [0, 3]  # both open windows of c lack the unacked one


def test_one_windows_surplus_never_hides_anothers_loss() -> None:
    """A receiver that got a message its publisher never saw acknowledged (its connection broke first)
    is owed what it got; another receiver's missing message is still lost."""
    acked = {"c": [1, 2, 3]}
    window = {"channel": "c", "end_id": None, "duplicated": 0, "reordered": 0, "recovered": 0, "gaps": 0}
    windows = [{**window, "start_id": 0, "delivered": 4}, {**window, "start_id": 0, "delivered": 2, "gaps": 1}]
    totals = expected_for_windows(windows, acked, {})
    assert (totals.expected, totals.delivered, totals.lost) == (4 + 3, 6, 1)
    assert totals.expected - totals.delivered == totals.lost


@pytest.mark.parametrize(
    ("ids", "before", "faults"),
    [
        ([8, 9, 10], None, (0, 0)),  # the newest page
        ([5, 6, 7], 8, (0, 0)),  # ends right before the page above it
        ([5, 7], 8, (0, 1)),  # 6 missing inside
        ([4, 5, 6], 8, (0, 1)),  # 7 missing at the top
        ([6, 7, 8], 8, (1, 0)),  # 8 was on the page above already
        ([6, 6, 7], 8, (1, 0)),
        ([], 8, (0, 0)),
    ],
)
def test_history_page_faults(ids: list[int], before: int | None, faults: tuple[int, int]) -> None:
    assert page_faults(ids, before) == faults
