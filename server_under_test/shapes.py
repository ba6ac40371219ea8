"""Server message shapes shared by the bundled server (app.py) and the Python peer (peers/picows_server.py).

They add to ``bench.core.protocol``'s builders what issue 10 asks of a server: stored messages carry their
``channelId``, every USER_STATUS names the channel it is for, and READ_RECEIPT ids are integers on the way
out whatever form (int or the seed's digit string) they came in.
"""

from __future__ import annotations

from typing import Any

from bench.core import protocol

MAX_ID_DIGITS = 16  # MAX_SAFE_INTEGER has 16 digits; longer strings name no message


def stored_message(
    message_id: int, channel_id: str, sender_id: str, publish: protocol.Publish, server_ts: int
) -> dict[str, Any]:
    """The stored form of a PUBLISH: what CHAT_MESSAGE's ``message`` and history pages carry."""
    return {
        "id": message_id,
        "channelId": channel_id,
        "senderId": sender_id,
        "messageType": publish.message_type,
        "content": publish.content,
        "timestamp": publish.timestamp,
        "serverTimestamp": server_ts,
        "clientMsgId": publish.client_msg_id,
    }


def presence(status: str, user_id: str, channel_id: str | None, timestamp: int) -> dict[str, Any]:
    """USER_STATUS about ``user_id`` in one channel; ``channel_id`` None only for the echo to the user's own
    connections that are in no channel."""
    return {**protocol.user_status(status, timestamp, user_id), "channelId": channel_id}
