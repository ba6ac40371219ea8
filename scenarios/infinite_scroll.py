"""Infinite scroll: users page through a deep channel history, backwards then forwards.

    locust -f scenarios/infinite_scroll.py --host http://127.0.0.1:8765 --headless -u 20 -r 20 -t 20s \\
        --channels 2 --history-depth 1000 --page-limit 20

Before users start, the master (or the local process) seeds each channel with ``--history-depth``
tagged messages over one WebSocket. Each user then scrolls as the seed's ``useChatMessages`` does:
``before`` = the oldest id it holds, ``limit`` 20, until ``hasMore`` is false (or
``--pages-per-scroll`` pages), then forwards with ``after`` = the newest id it holds, and again.

Measures history_page latency, pages per second and exactness of every pass: ids strictly
increasing when the pages are laid end to end, no duplicate, no gap in the seeded sequence numbers.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from locust import task

from bench.core import protocol
from bench.core.exceptions import BenchError
from bench.loadgen import runtime
from bench.loadgen.fanout import content_of
from bench.loadgen.http_api import ChatHttp, HistoryPage, get_token
from bench.loadgen.options import Option
from bench.loadgen.runtime import Run
from bench.loadgen.user import ChatUser, now_us
from bench.loadgen.wire import CATCH_UP, HISTORY, hooks_of
from bench.loadgen.wsclient import WebSocketConnection

OPTIONS: tuple[Option, ...] = (
    Option("channels", int, 2, "channels with a deep history (users spread over them)"),
    Option("history-depth", int, 500, "messages seeded into each channel before the users start"),
    Option("page-limit", int, 20, "messages per page (the seed's 20)"),
    Option("pages-per-scroll", int, 0, "pages per pass in each direction (0: until hasMore is false)"),
    Option("direction", str, "both", "backward, forward or both", ("backward", "forward", "both")),
    Option("think-ms", float, 50.0, "pause between pages (reading time)"),
    Option("seed-window", int, 100, "publishes in flight while seeding"),
)
SEED_TIMEOUT_S = 120.0


def seed_channel(run: Run, channel: str, depth: int) -> None:
    """Publish ``depth`` tagged messages into ``channel`` and wait for every echo."""
    params = run.params
    host = run.environment.host or ""
    http = ChatHttp(host, timeout=params["connect-timeout"], insecure=params["tls-insecure"] == "on")
    try:
        grant = get_token(
            http,
            params["auth"],
            params["user"] or "seeder",
            password=params["password"],
            secret=params["jwt-secret"],
            hooks=hooks_of(run.wire),
        )
    finally:
        http.close()
    wire = run.wire
    url = wire.url(host, params["ws-path"] or wire.default_path, grant.token)
    ws = WebSocketConnection(url, timeout=params["connect-timeout"], subprotocols=wire.subprotocols)
    ws.connect()
    publisher = f"seed.{channel}.{int(time.time() * 1000)}"
    content = content_of(100)
    deadline = time.time() + SEED_TIMEOUT_S
    try:
        ws.send(wire.subscribe(channel, int(time.time() * 1000)))
        subscribed = False
        sent = acked = 0
        while acked < depth and time.time() < deadline:
            while subscribed and sent < depth and sent - acked < int(params["seed-window"]):
                sent += 1
                tag = protocol.format_tag(publisher, sent, now_us(), now_us())
                ws.send(wire.publish(channel, content, int(time.time() * 1000), tag, "TEXT"))
            for payload in ws.recv_messages():
                for message in wire.decode(payload):
                    if message.get("type") == protocol.SUBSCRIBED:
                        subscribed = True
                    elif message.get("type") == protocol.CHAT_MESSAGE:
                        tag_text = str((message.get("message") or {}).get("clientMsgId", ""))
                        acked += tag_text.startswith(publisher + ":")
        if acked < depth:
            raise BenchError(f"seeding {channel}: {acked} of {depth} messages acknowledged in time")
    finally:
        ws.close()


def seed_all(run: Run) -> None:
    depth = int(run.params["history-depth"])
    prefix = run.params["channel-prefix"]
    jobs = [gevent.spawn(seed_channel, run, f"{prefix}scroll-{c}", depth) for c in range(int(run.params["channels"]))]
    gevent.joinall(jobs, raise_error=True)


def _id_or_zero(message: dict[str, Any]) -> int:
    message_id = message.get("id")
    return message_id if isinstance(message_id, int) else 0


def check_pass(pages: list[HistoryPage]) -> dict[str, int]:
    """Duplicates and gaps of one pass, its pages laid end to end in ascending id order."""
    messages = [message for page in pages for message in page.messages]
    messages.sort(key=_id_or_zero)
    seen: set[Any] = set()
    duplicates = gaps = 0
    last_seq: dict[str, int] = {}
    for message in messages:
        message_id = message.get("id")
        if message_id in seen:
            duplicates += 1
            continue
        seen.add(message_id)
        tag = protocol.parse_tag(message.get("clientMsgId"))
        if tag is None:
            continue
        previous = last_seq.get(tag.publisher)
        if previous is not None and tag.seq > previous + 1:
            gaps += tag.seq - previous - 1
        last_seq[tag.publisher] = tag.seq
    return {"messages": len(seen), "duplicates": duplicates, "gaps": gaps}


class ScrollUser(ChatUser):
    """Scrolls one channel's history back to the beginning and forward again, page by page."""

    kind = "r"
    track_integrity = False

    def on_start(self) -> None:
        super().on_start()
        self.channel = f"{self.params['channel-prefix']}scroll-{self.index % int(self.params['channels'])}"
        self.limit = int(self.params["page-limit"])
        self.max_pages = int(self.params["pages-per-scroll"]) or 10**9
        try:
            self._login()
        except BenchError as exc:
            self._failed(exc)

    def page(self, **cursor: int | None) -> HistoryPage | None:
        start = now_us()
        try:
            result = self.http.history_of(self.hooks, self.channel, self.token, limit=self.limit, **cursor)
        except BenchError as exc:
            self.recorder.error(getattr(exc, "reason", "history_failed"))
            return None
        self.recorder.record("history_page", now_us() - start)
        self.recorder.count("pages")
        self.recorder.history["pages"] += 1
        think = float(self.params["think-ms"]) / 1000
        if think:
            gevent.sleep(think)
        return result

    def scroll(self, *, backward: bool, cursor: int | None) -> int | None:
        """One pass; returns the id at its far end (the oldest going back, the newest going forward)."""
        pages: list[HistoryPage] = []
        while len(pages) < self.max_pages and not self.bench.stopping:
            page = self.page(before=cursor) if backward else self.page(after=cursor)
            if page is None:
                break
            pages.append(page)
            if page.messages:
                cursor = page.messages[0 if backward else -1].get("id")
            if not page.has_more or not page.messages:
                break
        for key, n in check_pass(pages).items():
            self.recorder.history[key] += n
        return cursor

    @task
    def scroll_both_ways(self) -> None:
        if self.token is None and self.params["auth"] != "none":
            return
        direction = self.params["direction"]
        oldest = None
        if direction in ("backward", "both"):
            oldest = self.scroll(backward=True, cursor=None)
        if direction in ("forward", "both"):
            self.scroll(backward=False, cursor=(oldest - 1) if isinstance(oldest, int) else 0)

    def wait_time(self) -> float:
        return 0.0


def needs(params: dict[str, Any]) -> frozenset[str]:
    """History pages backwards; forwards too (``after``) unless the scroll goes backwards only."""
    return frozenset({HISTORY} if params["direction"] == "backward" else {HISTORY, CATCH_UP})


runtime.install("infinite_scroll", OPTIONS, prepare=seed_all, needs=needs)
