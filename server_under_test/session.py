"""One WebSocket connection: rate limit, parse, dispatch, answer every refusal with an ERROR."""

from __future__ import annotations

import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from bench.core import protocol
from bench.core.exceptions import ProtocolError
from server_under_test.app import ChatApp
from server_under_test.auth import Identity
from server_under_test.fanout import wants_batches
from server_under_test.hub import Client
from server_under_test.ratelimit import FloodDetector, TokenBucket

logger = logging.getLogger("server_under_test")


class ChatConnection(ServerConnection):
    """A server connection that carries the identity its upgrade request proved."""

    identity: Identity | None = None


async def serve_connection(app: ChatApp, conn: ServerConnection) -> None:
    """The handler websockets runs for each upgraded connection."""
    identity = getattr(conn, "identity", None)
    if identity is None:  # process_request refuses unauthenticated upgrades; never reached in practice
        await conn.close(protocol.CLOSE_POLICY, "not authenticated")
        return
    config = app.config
    client = Client(
        conn,
        identity,
        TokenBucket(config.rate_limit_per_s, config.rate_limit_burst),
        FloodDetector(config.rate_limit_close_after, config.rate_limit_window_s),
        batch=wants_batches(conn),
    )
    app.connected(client)
    try:
        await _receive_loop(app, client)
    except ConnectionClosed:
        pass
    finally:
        await app.disconnected(client)


async def _receive_loop(app: ChatApp, client: Client) -> None:
    metrics, loads = app.metrics, app.codec.loads
    async for raw in client.conn:
        metrics.chat_frames_in += 1
        if not client.bucket.take():
            metrics.chat_rate_limited += 1
            if client.flood.refused():
                metrics.chat_rate_limit_closes += 1
                await client.conn.close(protocol.CLOSE_POLICY, "rate limit exceeded")
                return
            app.refuse(client, ProtocolError(protocol.RATE_LIMITED, "too many messages; slow down"))
            continue
        try:
            await app.handle(client, protocol.parse_client_message(raw, loads))
        except ProtocolError as exc:
            app.refuse(client, exc)
        except RecursionError:
            app.refuse(client, ProtocolError(protocol.BAD_JSON, "frame is nested too deeply"))
        except (OverflowError, ValueError) as exc:  # e.g. a timestamp of 1e400 or NaN
            app.refuse(client, ProtocolError(protocol.BAD_MESSAGE, f"a value is out of range: {exc}"))
        except ConnectionClosed:
            raise
        except Exception:
            logger.exception("handler failed for %s", client.user_id)
            app.refuse(client, ProtocolError(protocol.INTERNAL, "the server failed on this message"))
