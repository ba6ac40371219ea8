"""The one exception root of the project, shared by the server, the scenarios and the CLI.

    BenchError                      anything this project raises on purpose
    ├── ProtocolError               a frame or message that breaks the wire protocol (has ``code``)
    ├── ConfigError                 a bad preset, config file, ``--set`` key or value (has ``key``)
    ├── UsageError                  a bad CLI argument: unknown scenario, malformed --slo, ...
    ├── TargetError                 the server under test cannot be reached or started (has ``url``)
    │   └── ServerDiedError         the bundled server exited while a run was under way
    ├── AuthError                   credentials or a token were refused (has ``status``)
    ├── ClientConnectionError       a load-generating client failed to connect or lost its connection
    │                               (has ``reason``, a short label for error counts, and ``code``)
    ├── ResultError                 a result.json that is missing, unreadable or of another schema
    └── LoadGenError                the load generator quit or never reached the load it was asked for

Each error reads well on one line (``str(err)``) so that the CLI can print it and exit.
"""

from __future__ import annotations


class BenchError(Exception):
    """Root of every error this project raises on purpose."""


class ProtocolError(BenchError):
    """A message that breaks the protocol; ``code`` is the ERROR code sent back to the client."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class ConfigError(BenchError):
    """A bad configuration key or value."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message if key is None else f"{key}: {message}")
        self.key = key


class UsageError(BenchError):
    """A command line that cannot be carried out as written."""


class TargetError(BenchError):
    """The server under test cannot be reached or started."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message if url is None else f"{url}: {message}")
        self.url = url


class ServerDiedError(TargetError):
    """The bundled server exited while a run was under way."""

    def __init__(self, message: str, *, url: str | None = None, returncode: int | None = None) -> None:
        super().__init__(message, url=url)
        self.returncode = returncode


class AuthError(BenchError):
    """Credentials or a token were refused."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message if status is None else f"HTTP {status}: {message}")
        self.status = status


class ResultError(BenchError):
    """A result file that cannot be used."""


class ClientConnectionError(BenchError):
    """A load-generating client could not connect, or its connection closed.

    ``reason`` is a short stable label (``refused``, ``timeout``, ``http_401``, ``closed_1012``, ...) used
    as the key of error counts; ``code`` is the WebSocket close code when there was one.
    """

    def __init__(self, reason: str, detail: str = "", *, code: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.code = code


class LoadGenError(BenchError):
    """The load generator exited early or did not reach the requested load in time."""
