"""Batch framing is negotiated; the batched fan-out flushes once per event-loop pass, one write per connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.core import protocol
from bench.core.exceptions import ConfigError
from server_under_test.config import list_presets, load_config
from tests.utils import TIMEOUT, RunningServer, start_server
from tests.utils.chat_client import chat_client, metric
from tests.utils.fanout_kit import BATCH_SUBPROTOCOL, batch_client, burst, contents, publishes, raw_frames

BURST = 40


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_sends_one_object_per_frame_without_negotiation(preset: str, tmp_path: Path) -> None:
    with start_server(preset, f"history_path={tmp_path / 'h.sqlite3'}", "presence=false") as server:

        async def scenario() -> None:
            async with chat_client(server, "pub") as pub, chat_client(server, "plain") as plain:
                for client in (pub, plain):
                    await client.subscribe("c")
                await burst(pub, publishes("c", "m", BURST))
                for client in (plain, pub):
                    frames = await raw_frames(client, BURST)
                    assert all(isinstance(frame, dict) for frame in frames)
                    assert contents(frames) == [f"m{seq}" for seq in range(BURST)]

        asyncio.run(scenario())


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with start_server("default", "presence=false") as running:
        yield running


def burst_to_three(server: RunningServer, via: str, prefix: str) -> tuple[float, float]:
    """A burst into a channel with a plain reader and a negotiating one; (frames, writes) it cost."""

    async def scenario() -> tuple[float, float]:
        async with (
            chat_client(server, f"{prefix}pub") as pub,
            chat_client(server, f"{prefix}plain") as plain,
            batch_client(server, f"{prefix}batcher", via) as batcher,
        ):
            for client in (pub, plain, batcher):
                await client.subscribe(prefix)
            frames_before, writes_before = metric(server, "chat_frames_out_total"), metric(server, "chat_writes_total")
            await burst(pub, publishes(prefix, "a", BURST))
            expected = [f"a{seq}" for seq in range(BURST)]
            batched = await raw_frames(batcher, BURST)
            assert len(batched) == 1 and isinstance(batched[0], list) and contents(batched) == expected
            for client in (plain, pub):
                assert contents(await raw_frames(client, BURST)) == expected
            frames = metric(server, "chat_frames_out_total") - frames_before
            return frames, metric(server, "chat_writes_total") - writes_before

    return asyncio.run(scenario())


@pytest.mark.parametrize("via", ["subprotocol", "query"])
def test_a_negotiating_client_gets_one_array_and_each_connection_one_write(server: RunningServer, via: str) -> None:
    assert burst_to_three(server, via, f"arrays-{via}") == (2 * BURST + 1, 3)  # one write per connection


def test_without_coalescing_every_frame_is_a_write() -> None:
    with start_server("eager", "presence=false") as eager:
        assert burst_to_three(eager, "subprotocol", "eager") == (2 * BURST + 1, 2 * BURST + 1)


def test_one_write_per_connection_covers_all_its_channels(server: RunningServer) -> None:
    channels = ("left", "right")

    async def scenario() -> None:
        async with (
            chat_client(server, "pub2") as pub,
            chat_client(server, "plain2") as plain,
            batch_client(server, "batcher2", "subprotocol") as batcher,
        ):
            for client in (pub, plain, batcher):
                for channel in channels:
                    await client.subscribe(channel)
            writes_before = metric(server, "chat_writes_total")
            batches_before = metric(server, "chat_batches_total")
            per_channel = {channel: publishes(channel, f"{channel}-", BURST // 2) for channel in channels}
            await burst(pub, [m for pair in zip(*per_channel.values(), strict=True) for m in pair])
            arrays = await raw_frames(batcher, BURST)
            assert len(arrays) == 2 and all(isinstance(frame, list) for frame in arrays)  # one per channel
            for client_frames in (arrays, await raw_frames(plain, BURST)):
                for channel in channels:  # each channel's order is kept
                    mine = [c for c in contents(client_frames) if c.startswith(f"{channel}-")]
                    assert mine == [f"{channel}-{seq}" for seq in range(BURST // 2)]
            await raw_frames(pub, BURST)
            assert metric(server, "chat_writes_total") - writes_before == 3
            assert metric(server, "chat_batches_total") - batches_before == 2

    asyncio.run(scenario())


def test_other_subprotocols_are_not_refused(server: RunningServer) -> None:
    async def scenario() -> None:
        async with chat_client(server, "other", subprotocols=["something.else"]) as other:
            assert other.ws.subprotocol is None
            await other.subscribe("plain")
        async with chat_client(server, "both", subprotocols=["something.else", BATCH_SUBPROTOCOL]) as both:
            assert both.ws.subprotocol == BATCH_SUBPROTOCOL

    asyncio.run(scenario())


def test_an_idle_server_sends_at_once(server: RunningServer) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with chat_client(server, "quick") as quick:
            await quick.subscribe("quick")
            for seq in range(5):
                started = loop.time()
                await quick.publish("quick", f"q{seq}")
                await quick.expect(protocol.CHAT_MESSAGE)
                assert loop.time() - started < TIMEOUT / 10

    asyncio.run(scenario())


def test_a_paced_channel_waits_its_window_unless_max_batch_fills() -> None:
    window_s = 1.0
    with start_server("default", f"batch_window_ms={window_s * 1000}", "max_batch=50", "presence=false") as server:

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            async with batch_client(server, "full", "subprotocol") as sender:
                await sender.subscribe("full")
                await sender.publish("full", "prime")  # the channel has just flushed: the window is running
                await sender.expect(protocol.CHAT_MESSAGE, timeout=2 * window_s)
                started = loop.time()
                for seq in range(50):
                    await sender.publish("full", f"f{seq}")
                batch = await raw_frames(sender, 50)
                assert loop.time() - started < window_s / 2
                assert len(batch) == 1 and contents(batch) == [f"f{seq}" for seq in range(50)]
                await sender.publish("full", "alone")
                assert contents(await raw_frames(sender, 1)) == ["alone"]
                assert loop.time() - started >= window_s * 0.9

        asyncio.run(scenario())


@pytest.mark.parametrize("key", ["batch_window_max_ms", "fanout_busy_target"])
def test_removed_knobs_say_why(key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config("default", [f"{key}=30"])
    assert error.value.key == key and "end of each event-loop pass" in str(error.value)
