"""Hostile traffic against a server while a canary group checks that nothing is lost and p99 stays bounded.

    python -m server_under_test.soak --seconds 120 [--preset default | --url http://HOST:PORT] [--seed 1]

Attacks, drawn from a seeded generator: raw HTTP (methods in any case, garbage targets, hostile integers,
conflicting lengths, chunked bodies, oversize heads and bodies, Latin-1 credentials, pipelines),
WebSocket handshakes with broken headers or origins, and frames on an authenticated socket (reserved
opcodes and bits, bad fragmentation, UTF-16 and non-UTF-8 payloads, NaN, lone surrogates, deep nesting,
huge ints, oversize pings, bad close codes, ping bursts). Meanwhile a publisher sends a numbered message
every ``--interval`` seconds to a channel with three subscribers, which count what they miss and record
the latency. Exit status 1 if a canary lost a message, the p99 passed ``--p99-ms``, or /healthz failed.
Traffic goes to the loopback address only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection, connect

from bench.core import protocol

CANARY_CHANNEL: Final = "canary"
SUBSCRIBERS: Final = 3
READ_S: Final = 0.05  # how long an attack waits for an answer before moving on
MAX_SECONDS: Final = 3600.0

# --- the generator ---------------------------------------------------------------------------------

HOSTILE_INTS: Final = ["9223372036854775808", "18446744073709551616", " 5", "+5", "5_0", "\uff15", "-1", "1e3", ""]
METHODS: Final = ["GET", "POST", "OPTIONS", "HEAD", "PUT", "DELETE", "get", "PRI", "G\x00T", "X" * 300]
PATHS: Final = ["/healthz", "/metrics", "/auth/token", "/auth/login", "/ws", "/", "/channels/general/messages"]


def _target(rng: random.Random) -> str:
    path = rng.choice([*PATHS, "/channels/%ff/messages", "/channels//messages", "/" + "a" * rng.randint(1, 9000)])
    if rng.random() < 0.6:
        name = rng.choice(["before", "after", "limit", "token", "before&before"])
        value = rng.choice([*HOSTILE_INTS, "7", "%00", "%e9"])
        path += f"?{name}={quote(value)}"
    return path


def http_attack(rng: random.Random, token: str) -> bytes:
    """One to three raw requests, each mutated somewhere."""
    out = b""
    for _ in range(rng.randint(1, 3)):
        headers = ["Host: 127.0.0.1"]
        choice = rng.random()
        if choice < 0.2:
            headers.append("Authorization: Basic " + rng.choice(["\xe9\xe9\xe9\xe9", "!!!", "YTpi", ""]))
        elif choice < 0.4:
            headers.append(f"Authorization: Bearer {rng.choice([token, 'x.y.z', token[:-3]])}")
        if rng.random() < 0.3:
            headers.append(f"Origin: {rng.choice(['https://evil.example', 'null', 'http://localhost'])}")
            headers.append("Access-Control-Request-Method: POST")
        body = rng.choice([b"", b'{"username":"u","password":"bench"}', b"{", b"x" * rng.randint(0, 70_000)])
        framing = rng.random()
        if framing < 0.5 and body:
            headers.append(f"Content-Length: {len(body)}")
        elif framing < 0.6:
            headers += ["Content-Length: 3", "Content-Length: 4"]
        elif framing < 0.7:
            headers.append("Transfer-Encoding: chunked")
            body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if rng.random() < 0.7 else b"zz\r\n"
        if rng.random() < 0.2:
            headers.append("Content-Type: application/json")
        if rng.random() < 0.05:
            headers.append("X-Big: " + "h" * rng.randint(10_000, 40_000))
        line = f"{rng.choice(METHODS)} {_target(rng)} HTTP/{rng.choice(['1.1', '1.0', '2.0', '9'])}"
        out += ("\r\n".join([line, *headers]) + "\r\n\r\n").encode("latin-1", "replace") + body
    return out


def handshake_attack(rng: random.Random, token: str) -> bytes:
    headers = {
        "Host": "127.0.0.1",
        "Upgrade": rng.choice(["websocket", "WebSocket", "h2c", ""]),
        "Connection": rng.choice(["Upgrade", "keep-alive, Upgrade", "close"]),
        "Sec-WebSocket-Key": rng.choice([base64.b64encode(rng.randbytes(16)).decode(), "short", ""]),
        "Sec-WebSocket-Version": rng.choice(["13", "8", "x"]),
    }
    if rng.random() < 0.3:
        headers["Origin"] = rng.choice(["https://evil.example", "null"])
    for name in rng.sample(sorted(headers), rng.randint(0, 2)):
        del headers[name]
    query = rng.choice([f"?token={token}", "?token=", "", "?token=a.b.c", f"?token={token}&token=x"])
    lines = [f"{rng.choice(['GET', 'POST', 'get'])} {rng.choice(['/ws', '/', '/healthz'])}{query} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """A client frame (zero mask when masked, so the payload goes as it is)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    return head + (b"\0\0\0\0" if masked else b"") + payload


def _payload(rng: random.Random) -> bytes:
    message = dict(rng.choice([protocol.publish("x", "hi", 1, "c"), protocol.subscribe("x", 1)]))
    text = json.dumps(message)
    return rng.choice(
        [
            rng.randbytes(rng.randint(0, 64)),
            text.encode("utf-16-le"),
            '{"type":"PUBLISH","channelId":"x","content":"x\ud800y"}'.encode("utf-16-le", "surrogatepass"),
            text.replace('"hi"', '"\\ud800"').encode(),
            text.replace("1,", "NaN,").encode(),
            text.replace("1,", "1" * 400 + ",").encode(),
            b"[" * rng.randint(1, 5000),
            text.encode(),
            json.dumps({"type": "READ_RECEIPT", "channelId": "x", "messageId": rng.choice(HOSTILE_INTS)}).encode(),
        ]
    )


def frame_attack(rng: random.Random) -> bytes:
    """A burst of frames on an authenticated connection."""
    frames: list[bytes] = []
    for _ in range(rng.randint(1, 20)):
        kind = rng.random()
        if kind < 0.4:
            frames.append(client_frame(rng.choice([0x1, 0x2]), _payload(rng)))
        elif kind < 0.55:
            frames.append(client_frame(0x1, _payload(rng)[:8], fin=False) + client_frame(0x0, b"}", fin=True))
        elif kind < 0.65:
            frames.append(client_frame(0x9, rng.randbytes(rng.choice([0, 10, 125, 126]))) * rng.randint(1, 500))
        elif kind < 0.75:
            frames.append(client_frame(rng.choice([0x3, 0x7, 0xB, 0xF, 0x0]), b"odd"))
        elif kind < 0.8:
            frames.append(client_frame(0x1, b"{}", rsv=rng.randint(1, 7)))
        elif kind < 0.85:
            frames.append(client_frame(0x1, b"{}", masked=False))
        elif kind < 0.9:
            frames.append(client_frame(0x8, struct.pack("!H", rng.choice([0, 999, 1005, 4999, 65535])) + b"\xff"))
        else:
            frames.append(client_frame(0x1, b"x" * rng.choice([70_000, 200_000])))
    return b"".join(frames)


# --- running attacks ----------------------------------------------------------------------------------


@dataclass
class Target:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _send(target: Target, data: bytes, *, websocket_token: str | None = None) -> None:
    """Send the bytes (after a clean handshake when given a token), read briefly, hang up."""
    with socket.create_connection((target.host, target.port), timeout=2) as sock:
        sock.settimeout(2)
        if websocket_token is not None:
            key = base64.b64encode(os.urandom(16)).decode()
            sock.sendall(
                f"GET /ws?token={websocket_token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            if b" 101 " not in sock.recv(4096):
                raise RuntimeError("the server refused a valid upgrade")
        sock.settimeout(READ_S)
        try:
            sock.sendall(data)
            while sock.recv(65536):
                pass
        except OSError:
            pass


def login(target: Target, user: str) -> str:
    auth = base64.b64encode(f"{user}:bench".encode()).decode()
    request = urllib.request.Request(f"{target.url}/auth/token", headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        token = json.loads(response.read())["token"]
    assert isinstance(token, str)
    return token


def attack(target: Target, rng: random.Random, token: str) -> None:
    """One attack of a kind drawn at random."""
    kind = rng.random()
    if kind < 0.4:
        _send(target, http_attack(rng, token))
    elif kind < 0.55:
        _send(target, handshake_attack(rng, token))
    else:
        _send(target, frame_attack(rng), websocket_token=token)


# --- the canary -------------------------------------------------------------------------------------


@dataclass
class CanaryReport:
    sent: int = 0
    missing: int = 0
    duplicated: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[int(len(ordered) * 0.99)] if ordered else 0.0


async def canary(target: Target, tokens: list[str], stop: threading.Event, interval: float) -> CanaryReport:
    """A publisher (which reads its own copies, uncounted) and ``SUBSCRIBERS`` subscribers on one channel,
    until ``stop`` is set; then a drain."""
    report = CanaryReport()
    ws_url = f"ws://{target.host}:{target.port}/ws?token="
    sent_at: dict[int, float] = {}
    seen: list[dict[int, int]] = [{} for _ in range(SUBSCRIBERS)]

    async def listen(ws: ClientConnection, index: int | None) -> None:
        async for frame in ws:
            now = time.perf_counter()
            for message in protocol.decode_frame(frame):
                if message["type"] == protocol.CHAT_MESSAGE and index is not None:
                    seq = int(message["message"]["clientMsgId"])
                    seen[index][seq] = seen[index].get(seq, 0) + 1
                    report.latencies_ms.append((now - sent_at[seq]) * 1000)

    sockets = [await connect(ws_url + token, max_size=None, open_timeout=10) for token in tokens]
    try:
        for ws in sockets:
            await ws.send(json.dumps(protocol.subscribe(CANARY_CHANNEL, 0)))
        await asyncio.sleep(0.2)
        listeners = [asyncio.create_task(listen(ws, n - 1 if n else None)) for n, ws in enumerate(sockets)]
        publisher, started = sockets[0], time.monotonic()
        while not stop.is_set() and time.monotonic() - started < MAX_SECONDS:
            seq = report.sent
            sent_at[seq] = time.perf_counter()
            await publisher.send(json.dumps(protocol.publish(CANARY_CHANNEL, f"canary {seq}", 0, str(seq))))
            report.sent += 1
            await asyncio.sleep(interval)
        await asyncio.sleep(1.0)  # the drain
        for task in listeners:
            task.cancel()
    finally:
        for ws in sockets:
            await ws.close()
    for counts in seen:
        report.missing += sum(1 for seq in range(report.sent) if seq not in counts)
        report.duplicated += sum(count - 1 for count in counts.values())
    return report


def soak(target: Target, seconds: float, seed: int, interval: float = 0.02) -> tuple[CanaryReport, int]:
    """Attack for ``seconds`` while the canary runs; (the canary's report, attacks made)."""
    tokens = [login(target, f"canary-{n}") for n in range(SUBSCRIBERS + 1)]
    attacker_token = login(target, "attacker")
    stop = threading.Event()
    result: list[CanaryReport] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(canary(target, tokens, stop, interval))))
    thread.start()
    rng, attacks = random.Random(seed), 0
    time.sleep(0.4)
    deadline = time.monotonic() + min(seconds, MAX_SECONDS)
    try:
        while time.monotonic() < deadline:
            attack(target, rng, attacker_token)
            attacks += 1
    finally:
        stop.set()
        thread.join(30)
    if not result:
        raise RuntimeError("the canary did not finish")
    return result[0], attacks


def healthy(target: Target) -> bool:
    try:
        with urllib.request.urlopen(f"{target.url}/healthz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_server(preset: str, sets: list[str]) -> tuple[subprocess.Popen[str], Target]:
    """The bundled server on a free loopback port; its first line gives the address."""
    command = [sys.executable, "-m", "server_under_test", "--host", "127.0.0.1", "--port", "0", "--config", preset]
    for item in sets:
        command += ["--set", item]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"the server did not start: {line!r}")
    parts = urlsplit(line.split("listening on ")[1].split()[0])
    return process, Target(parts.hostname or "127.0.0.1", parts.port or 0)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--url", help="attack a running server instead of starting one")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between canary messages")
    parser.add_argument("--p99-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    process = None
    if args.url:
        parts = urlsplit(args.url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            parser.error("the soak only attacks a server on this machine")
        target = Target(parts.hostname or "127.0.0.1", parts.port or 80)
    else:
        process, target = start_server(args.preset, args.sets)
    try:
        report, attacks = soak(target, args.seconds, args.seed, args.interval)
        ok = healthy(target)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
    out(
        f"{attacks} attacks in {args.seconds:.0f} s; canary: {report.sent} sent, {report.missing} missing, "
        f"{report.duplicated} duplicated, p99 {report.p99_ms:.1f} ms; /healthz {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok and report.missing == 0 and report.duplicated == 0 and report.p99_ms <= args.p99_ms else 1


if __name__ == "__main__":
    sys.exit(main())
