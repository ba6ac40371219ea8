"""TLS: a certificate and key give https:// and wss:// (test certificate from trustme)."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
from pathlib import Path
from urllib.error import URLError

import pytest
import trustme

from bench.core import protocol
from tests.utils import http_get, start_server
from tests.utils.chat_client import chat_client


def test_tls_serves_https_and_wss(tmp_path: Path) -> None:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    authority.configure_trust(client_context)

    with start_server("default", f"tls_cert={cert_path}", f"tls_key={key_path}", ssl_context=client_context) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert server.ws_url.startswith("wss://")
        status, body = http_get(f"{server.url}/healthz", ssl_context=client_context)
        assert status == 200 and json.loads(body)["status"] == "ok"
        keepalive = http.client.HTTPSConnection("127.0.0.1", server.port, context=client_context, timeout=5)
        sockets = []
        for _ in range(2):  # keep-alive over TLS: one handshake, two answers
            keepalive.request("GET", "/healthz")
            assert keepalive.getresponse().read()
            sockets.append(keepalive.sock)
        assert sockets[0] is not None and sockets[0] is sockets[1]
        keepalive.close()
        with pytest.raises(URLError) as refused:  # a client that does not trust the test CA refuses it
            http_get(f"{server.url}/healthz", ssl_context=ssl.create_default_context())
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)

        async def scenario() -> None:
            async with chat_client(server, "secure") as client:
                await client.subscribe("tls")
                await client.publish("tls", "encrypted")
                event = await client.expect(protocol.CHAT_MESSAGE)
                assert event["message"]["content"] == "encrypted"

        asyncio.run(scenario())
