"""Errors a caller (or the server's surroundings) can cause, as HTTP answers: one JSON object,
`{"error": {"code", "message"}}`, with a 4xx status for the caller's mistakes and 503 for what
the caller can retry. Never a traceback, never the online store's URL or password."""

from __future__ import annotations

from fsdsl.diagnostics import UsageError

# fsc's own codes for what only a server sees (E06xx); store and push errors keep theirs.
MALFORMED_JSON = "E0601"
BAD_REQUEST = "E0602"
TOO_MANY_ENTITIES = "E0603"
TOO_LARGE = "E0604"
UNAUTHORIZED = "E0605"
WRITES_DISABLED = "E0606"
UNKNOWN_FEATURE = "E0607"
RELOAD_REFUSED = "E0609"
NO_ROUTE = "E0610"
CANNOT_LISTEN = "E0612"
INTERNAL = "E9999"

# The online store's own errors name where it is (host and port, redacted URL): an HTTP
# answer says only what happened.
_STORE = {
    "E0503": "the online store refused the server's credentials",
    "E0504": "the online store is unreachable; retry later",
    "E0505": "the online store failed to answer the request; retry later",
    "E0501": "the online store could not be started",
}
# Library errors that are the state of the stores, not the caller's request: retry later (no
# complete refresh yet, another run holds a view's lock, a lost lock, the warehouse).
_UNAVAILABLE = {"E0508", "E0506", "E0515", "E0003", "E0410", "E0523"}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        self.status = status
        self.code = code
        self.headers = headers or {}
        super().__init__(message)

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": str(self)}}


def from_usage(e: UsageError) -> HttpError:
    """The answer for a library error: 503 for the store, 400 for the rest (a missing key
    column, an unknown service or source, a bad pushed row: the request named them)."""
    if e.code in _STORE:
        return HttpError(503, e.code, _STORE[e.code])
    return HttpError(503 if e.code in _UNAVAILABLE else 400, e.code, str(e))
