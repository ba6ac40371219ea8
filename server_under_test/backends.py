"""Backends picked by name from small tables, with a fallback when an optional dependency is missing
(the way uvicorn's ``loops/auto.py`` picks uvloop)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("server_under_test")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@dataclass(frozen=True, slots=True)
class JsonBackend:
    """How a configuration turns messages into frames and frames into objects."""

    name: str
    dumps: Callable[[Any], bytes]
    dumps_text: Callable[[Any], str]
    loads: Callable[[bytes | str], Any]


def _stdlib_dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _stdlib_dumps_text(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _stdlib_loads(data: bytes | str) -> Any:
    """``json.loads`` made as strict as orjson: bytes are UTF-8 only (never the UTF-16 or UTF-32 that
    ``json.loads`` detects), ``NaN`` / ``Infinity`` are refused, and so are lone surrogates
    (``"\\ud800"``), which cannot be encoded back to UTF-8 and would fail at fan-out time."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    obj = json.loads(text, parse_constant=_refuse_constant)
    if "\\u" in text:
        try:
            json.dumps(obj, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValueError("lone surrogate in a string") from None
    return obj


def _stdlib_json() -> JsonBackend:
    return JsonBackend("json", _stdlib_dumps, _stdlib_dumps_text, _stdlib_loads)


def _orjson() -> JsonBackend:
    import orjson

    def dumps_text(obj: Any) -> str:
        return orjson.dumps(obj).decode()

    return JsonBackend("orjson", orjson.dumps, dumps_text, orjson.loads)


_JSON: dict[str, tuple[str | None, Callable[[], JsonBackend]]] = {
    "json": (None, _stdlib_json),
    "orjson": ("orjson", _orjson),
}


def json_backend(name: str) -> JsonBackend:
    """The JSON backend called ``name``, or the standard library's when its module is not installed."""
    module, factory = _JSON[name]
    if module is not None and importlib.util.find_spec(module) is None:
        logger.warning("json backend %r is not installed; falling back to the standard library", name)
        return _stdlib_json()
    return factory()


def _uvloop_factory() -> LoopFactory | None:
    if importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    return uvloop.new_event_loop


def loop_factory(name: str) -> tuple[str, LoopFactory]:
    """The event loop called ``name`` (asyncio, uvloop, auto) as (effective name, factory)."""
    if name in ("uvloop", "auto"):
        factory = _uvloop_factory()
        if factory is not None:
            return "uvloop", factory
        if name == "uvloop":
            logger.warning("uvloop is not installed; falling back to the asyncio event loop")
    return "asyncio", asyncio.new_event_loop
