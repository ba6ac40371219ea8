"""Integrity in Locust's web UI: an "Integrity" tab, and ``/chatbench/integrity`` as JSON.

Locust's extension points (``template_args["extended_tabs"]`` and ``["extended_tables"]``, and
``extended_stats`` added to the ``/stats/requests`` answer it polls) show the counts beside its own
stats, live, whatever the protocol: published, delivered, lost so far (gaps: messages missing now,
which a late delivery may still fill), duplicated, reordered. The final figures are in result.json.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson
from flask import Response, request
from locust.env import Environment

TAB: Final = "chatbench-integrity"
JSON_PATH: Final = "/chatbench/integrity"
ROWS: Final = (
    ("protocol", "protocol"),
    ("published", "published"),
    ("delivered", "delivered"),
    ("lost", "lost so far (missing now)"),
    ("duplicated", "duplicated"),
    ("reordered", "reordered"),
)


def rows(counts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": label, "value": counts.get(key, 0)} for key, label in ROWS]


def install(environment: Environment, counts: Callable[[], dict[str, Any]]) -> None:
    """Add the tab and the JSON endpoint to the running web UI (a no-op when there is none)."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    app = web_ui.app
    web_ui.template_args["extended_tabs"] = [{"title": "Integrity", "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": "name", "title": "Integrity"}, {"key": "value", "title": "Count"}]}
    ]

    def integrity() -> Response:
        return Response(orjson.dumps(counts()), mimetype="application/json")

    def extend_stats(response: Response) -> Response:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        data = response.get_json()
        if isinstance(data, dict):
            data["extended_stats"] = [{"key": TAB, "data": rows(counts())}]
            response.set_data(orjson.dumps(data))
        return response

    app.add_url_rule(JSON_PATH, "chatbench_integrity", integrity)
    app.after_request(extend_stats)
