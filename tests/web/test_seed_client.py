"""The seed's own client code (tests/web/seed_client/), in headless Chromium on a page of its own origin,
against the bundled server (issue 10, "seed compatibility by default").

One scenario per preset (``default``, ``naive``) runs in a module fixture and keeps what the page recorded
(``window.__results``) and what a Python peer saw; each test below checks one seed behaviour of it, so a
failure names the behaviour. Two parts depend on work in other branches:

- cross-origin ``fetch()`` (both logins and the history pages) needs CORS on the HTTP layer; without it the
  page falls back to a token minted from Python so that everything else still runs (``test_login_*``,
  ``test_infinite_scroll``);
- the seed's ``onmessage`` parses one JSON object per frame; a batched preset that sends arrays loses those
  messages (``test_receives_others_messages`` and ``test_unread_count_*`` under ``default``).

Those tests xfail, naming the missing feature, while a probe of the running server shows it absent (no CORS
preflight answer; array frames to the Python peer, which does not negotiate batching), and assert for real
once the server has it.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websocket

from bench.core import protocol
from tests.utils import TIMEOUT, RunningServer, fetch_token, start_server, static_site

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SITE = Path(__file__).resolve().parent / "seed_client"
CHANNELS = ("lobby", "random")  # the page's current channel is the first
HISTORY = 45  # lobby messages written before the page connects, for the infinite scroll
BURST = 10  # messages another user publishes at once to random (batched presets merge them)
# Deterministic lobby ids: HISTORY from carol, then the page's TEXT and IMAGE, then bob's mention.
PAGE_TEXT_ID, PAGE_IMAGE_ID, MENTION_ID = HISTORY + 1, HISTORY + 2, HISTORY + 3

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (the test extra)")


# --- the page's own origin -------------------------------------------------------------------------


# --- another user, from Python -----------------------------------------------------------------------


class Peer:
    """A plain protocol client that remembers every message it received (batched frames split)."""

    def __init__(self, server: RunningServer, user: str) -> None:
        token = fetch_token(server.url, user)
        self.ws = websocket.create_connection(f"{server.ws_url}?token={token}", timeout=TIMEOUT)
        self.seen: list[dict[str, Any]] = []
        self.array_frames = 0  # batched frames, though this client never asked for them

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def until(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1) -> list[dict[str, Any]]:
        """Read until ``count`` messages match (raises on the socket timeout)."""
        matched = [message for message in self.seen if predicate(message)]
        while len(matched) < count:
            frame = self.ws.recv()
            self.array_frames += isinstance(frame, str) and frame.startswith("[")
            for message in protocol.decode_frame(frame):
                self.seen.append(message)
                if predicate(message):
                    matched.append(message)
        return matched

    def subscribe(self, channel: str) -> None:
        self.send(protocol.subscribe(channel, 0))
        self.until(lambda m: m["type"] == protocol.SUBSCRIBED and m["channelId"] == channel)

    def publish(self, channel: str, content: str) -> None:
        self.send(protocol.publish(channel, content, 0, content))

    def close(self) -> None:
        self.ws.close()


def answers_cors_preflight(server: RunningServer, origin: str) -> bool:
    """Whether the server answers the preflight the page's Basic login needs (2xx with Allow-Origin)."""
    request = urllib.request.Request(
        f"{server.url}/auth/token",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status < 300 and response.headers.get("Access-Control-Allow-Origin") is not None
    except (urllib.error.URLError, OSError):  # an HTTP error status, or a connection the server dropped
        return False


def own_copies(peer: Peer, contents: list[str]) -> None:
    """Wait for the peer's own copies of what it published."""
    peer.until(lambda m: m["type"] == protocol.CHAT_MESSAGE and m["message"]["content"] in contents, len(contents))


# --- the scenario ----------------------------------------------------------------------------------


@dataclass(repr=False)
class SeedRun:
    """What one preset's scenario recorded; its repr (in failures) names the waits that gave up."""

    preset: str
    origin: str = ""  # the page's, not the server's
    results: dict[str, Any] = field(default_factory=dict)  # window.__results at the end
    scrolled: dict[str, Any] = field(default_factory=dict)  # ... right after the infinite scroll
    login_fallback: bool = False
    server_has_cors: bool = False
    server_sends_arrays: bool = False  # to a client that did not negotiate batching
    bob_saw: list[dict[str, Any]] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)  # the waits that gave up
    console: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"SeedRun({self.preset}, gave up waiting for {self.timeouts}, login fallback: {self.login_fallback})"


class Page:
    """The browser page running the seed client, and the waits on what it recorded."""

    def __init__(self, page: Any, run: SeedRun) -> None:
        self.page = page
        self.run = run

    def call(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def results(self) -> dict[str, Any]:
        return dict(self.page.evaluate("window.__results"))

    def wait(self, name: str, predicate: str, timeout: float = TIMEOUT) -> bool:
        """Wait until ``predicate`` (JS over ``r``, the page's results) holds; False (and noted) if it never does."""
        try:
            self.page.wait_for_function(
                f"(() => {{ const r = window.__results; return {predicate}; }})()", timeout=timeout * 1000, polling=50
            )
            return True
        except sync_api.TimeoutError:
            self.run.timeouts.append(name)
            return False


def is_status(message: dict[str, Any], user: str, status: str) -> bool:
    return bool(message["type"] == protocol.USER_STATUS and message["userId"] == user and message["status"] == status)


def drive(page: Page, run: SeedRun, stack: contextlib.ExitStack) -> None:
    """Every seed behaviour of issue 10 in turn; waits that give up are noted, not raised, so that the
    tests can tell which behaviour failed."""
    server = stack.enter_context(start_server(run.preset))
    carol = Peer(server, "carol")
    carol.subscribe("lobby")
    for n in range(HISTORY):
        carol.publish("lobby", f"old-{n}")
    own_copies(carol, [f"old-{n}" for n in range(HISTORY)])
    carol.close()

    run.server_has_cors = answers_cors_preflight(server, run.origin)
    query = urllib.parse.urlencode({"api": server.url, "ws": server.ws_url, "channels": ",".join(CHANNELS)})
    page.page.goto(f"{run.origin}/index.html?{query}")
    page.page.wait_for_function("window.harnessReady === true", timeout=TIMEOUT * 1000)

    token = page.call("([user, password]) => harness.login(user, password)", ["alice", "bench"])
    if token is None:  # no CORS yet: carry on with a token from Python
        run.login_fallback = True
        token = fetch_token(server.url, "alice")
    page.call("token => harness.start(token)", token)
    page.wait("subscribed", "r.frames.subscribed.length >= 2")

    bob = Peer(server, "bob")
    for channel in CHANNELS:
        bob.subscribe(channel)
    page.wait("bob online", "r.userStatus.bob && Object.keys(r.userStatus.bob).length === 2")

    page.call("harness.publish('lobby', 'text from the page', 'TEXT')")
    page.call("harness.publish('random', 'report.pdf', 'FILE')")
    page.call("harness.publish('lobby', 'cat.png', 'IMAGE')")
    page.wait("own copies", "(r.chatMessages.lobby || []).length >= 2 && (r.chatMessages.random || []).length >= 1")
    bob.publish("lobby", "hello @alice")
    for n in range(BURST):
        bob.publish("random", f"burst-{n}")
    page.wait("others' messages", f"(r.chatMessages.random || []).length >= {1 + BURST}")
    page.wait("mention", "r.notifications.some(n => n.kind === 'mention')")

    page.call("id => harness.readReceipt('lobby', id)", MENTION_ID)  # sent as the seed does: a string
    bob.send(protocol.read_receipt("lobby", PAGE_TEXT_ID, 0))
    page.wait("receipts", "r.readReceipts.length >= 2")

    page.call("harness.status('AWAY')")
    with contextlib.suppress(websocket.WebSocketTimeoutException):
        bob.until(lambda m: is_status(m, "alice", "AWAY"), len(CHANNELS))
    bob.send(protocol.user_status("AWAY", 0))
    page.wait("bob away", "r.userStatus.bob && Object.values(r.userStatus.bob).every(s => s === 'AWAY')")

    page.call("harness.scrollBack('lobby')")
    run.scrolled = page.results()
    run.bob_saw = bob.seen
    run.server_sends_arrays = bob.array_frames > 0

    bob.close()
    port = server.port
    server.stop()  # graceful: the shutdown NOTIFICATION, then close 1012
    server = stack.enter_context(start_server(run.preset, port=port))
    page.wait(
        "reconnected", f"r.connection.opens >= 2 && r.frames.subscribed.length >= {2 * len(CHANNELS)}", 6 * TIMEOUT
    )
    bob = Peer(server, "bob")
    bob.subscribe("lobby")
    bob.publish("lobby", "after the restart")
    page.wait("message after the restart", "r.chatMessages.lobby.some(m => m.content === 'after the restart')")
    page.wait(
        "batcher flushed", f"Object.values(r.batchedMessages).flat().length === r.frames.types.{protocol.CHAT_MESSAGE}"
    )
    bob.close()


@pytest.fixture(scope="module", params=["default", "naive"])
def seed_run(request: pytest.FixtureRequest) -> SeedRun:
    run = SeedRun(request.param)
    with sync_api.sync_playwright() as playwright, contextlib.ExitStack() as stack:
        run.origin = stack.enter_context(static_site(SITE))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        raw = browser.new_page()
        raw.on("console", lambda message: run.console.append(f"{message.type}: {message.text}"))
        page = Page(raw, run)
        drive(page, run, stack)
        run.results = page.results()
    return run


# --- the seed behaviours -----------------------------------------------------------------------------


def needs_cors(run: SeedRun) -> None:
    if not run.server_has_cors:
        pytest.xfail("the server answers no CORS preflight yet (the new HTTP layer): the page's fetch() fails")


def needs_one_object_per_frame(run: SeedRun) -> None:
    if run.server_sends_arrays:
        pytest.xfail("the server sends JSON arrays to clients that did not negotiate batching; the seed drops them")


def messages(run: SeedRun, channel: str, results: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return list((results or run.results)["chatMessages"].get(channel, []))


def test_login_cross_origin_with_a_json_body(seed_run: SeedRun) -> None:
    """POST /auth/login {"username", "password"} from the page's origin (needs the new HTTP layer and CORS)."""
    needs_cors(seed_run)
    post = seed_run.results["login"]["post"]
    assert post.get("ok") and post["userId"] == "alice", post


def test_login_cross_origin_with_basic(seed_run: SeedRun) -> None:
    """GET /auth/token with Basic from the page's origin (needs CORS: Authorization makes fetch preflight)."""
    needs_cors(seed_run)
    basic = seed_run.results["login"]["basic"]
    assert basic.get("ok") and basic["userId"] == "alice", basic


def test_subscribes_to_two_channels(seed_run: SeedRun) -> None:
    assert sorted(seed_run.results["frames"]["subscribed"][: len(CHANNELS)]) == sorted(CHANNELS)
    assert not seed_run.results["frames"]["errors"]


def test_publishes_text_file_image_and_receives_its_own(seed_run: SeedRun) -> None:
    own = {
        (channel, m["messageType"], m["content"], m["id"])
        for channel in CHANNELS
        for m in messages(seed_run, channel)
        if m["senderId"] == "alice"
    }
    assert own == {
        ("lobby", "TEXT", "text from the page", PAGE_TEXT_ID),
        ("lobby", "IMAGE", "cat.png", PAGE_IMAGE_ID),
        ("random", "FILE", "report.pdf", 1),
    }


def test_receives_others_messages(seed_run: SeedRun) -> None:
    """Bob's mention and his burst, each once, in order; a batched array frame is lost on the seed."""
    needs_one_object_per_frame(seed_run)
    frames = seed_run.results["frames"]
    assert frames["arrays"] == 0, f"{frames['messagesInArrays']} messages came in {frames['arrays']} array frames"
    before_restart = seed_run.scrolled
    bobs = [m["content"] for c in CHANNELS for m in messages(seed_run, c, before_restart) if m["senderId"] == "bob"]
    assert bobs[:1] == ["hello @alice"]
    assert bobs[1:] == [f"burst-{n}" for n in range(BURST)]


def test_batcher_files_messages_by_channel_id(seed_run: SeedRun) -> None:
    """flushMessageQueue keys on message.channelId: every live message under its own channel, as handleChatMessage
    filed it (the page's lists end with the live ones; history pages come before them)."""
    batched = seed_run.results["batchedMessages"]
    assert "undefined" not in batched, batched["undefined"][:3]
    assert sum(map(len, batched.values())) == seed_run.results["frames"]["types"].get(protocol.CHAT_MESSAGE)
    for channel in CHANNELS:
        queued = [(m["channelId"], m["id"], m["content"]) for m in batched.get(channel, [])]
        direct = [(channel, m["id"], m["content"]) for m in messages(seed_run, channel)]
        assert queued and queued == direct[-len(queued) :]


def test_unread_count_for_the_other_channel(seed_run: SeedRun) -> None:
    needs_one_object_per_frame(seed_run)
    unread = seed_run.results["unreadCount"]
    assert "lobby" not in unread  # the current channel
    assert unread.get("random") == 1 + BURST


def test_read_receipts_carry_integer_ids(seed_run: SeedRun) -> None:
    receipts = {(r["userId"], r["channelId"], r["messageId"]) for r in seed_run.results["readReceipts"]}
    assert receipts == {("alice", "lobby", MENTION_ID), ("bob", "lobby", PAGE_TEXT_ID)}


def test_presence_names_the_channel(seed_run: SeedRun) -> None:
    """USER_STATUS says which channel it is for: bob's AWAY seen in both shared channels, the page's own AWAY
    reaching bob once per channel, and its echo to the page likewise."""
    before_restart = seed_run.scrolled["userStatus"]
    assert before_restart["bob"] == {channel: "AWAY" for channel in CHANNELS}
    assert before_restart["alice"] == {channel: "AWAY" for channel in CHANNELS}
    away = [m["channelId"] for m in seed_run.bob_saw if is_status(m, "alice", "AWAY")]
    assert sorted(away) == sorted(CHANNELS)


def test_mention_notification(seed_run: SeedRun) -> None:
    notes = [n for n in seed_run.results["notifications"] if n["kind"] == "mention"]
    assert [(n["channelId"], n["messageId"], n["senderId"]) for n in notes] == [("lobby", MENTION_ID, "bob")]


def test_infinite_scroll_through_history(seed_run: SeedRun) -> None:
    """fetchMessages({channelId, before, limit: 20}) until a page adds nothing (needs CORS for the Bearer fetch)."""
    needs_cors(seed_run)
    history = seed_run.scrolled["history"]
    assert not history["errors"], history["errors"]
    ids = [m["id"] for m in messages(seed_run, "lobby", seed_run.scrolled)]
    assert ids == list(range(1, MENTION_ID + 1))
    assert all(m["channelId"] == "lobby" for m in messages(seed_run, "lobby", seed_run.scrolled))


def test_reconnects_after_a_server_restart(seed_run: SeedRun) -> None:
    connection = seed_run.results["connection"]
    assert 1012 in connection["closes"]
    assert any(n["kind"] == "shutdown" for n in seed_run.results["notifications"])
    delays = [attempt["delay"] for attempt in connection["reconnectAttempts"]]
    assert delays and all(a["delay"] == 1000 * 1.5 ** (a["attempt"] - 1) for a in connection["reconnectAttempts"])
    assert connection["opens"] >= 2 and seed_run.results["socketOpen"]
    assert any(m["content"] == "after the restart" for m in messages(seed_run, "lobby"))
