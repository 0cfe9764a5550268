"""The server's one error type: every 4xx/5xx leaves the server as ``{"error": {"code", "message"}}``.

Layer 5. Imports nothing but the standard library and ``wandblite.errors``. The store raises ``ApiError`` for bad input and
conflicts, so the HTTP app and the embedded-store path of ``wandblite sync`` see the same errors.
"""

from __future__ import annotations

from typing import Any

from wandblite.errors import Error

__all__ = ["ApiError", "bad_request", "conflict", "not_found", "unauthorized"]


class ApiError(Error):
    """An error with an HTTP status, a stable machine-readable ``code`` and a human ``message``.

    The server branch of the one exception tree (``wandblite.errors``).

    ``extra`` is merged into the error object (a 409 carries the server's ``position`` there).
    """

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def unauthorized(message: str = "a valid API key is required: send 'Authorization: Bearer <key>'") -> ApiError:
    return ApiError(401, "unauthorized", message)


def conflict(message: str, position: dict[str, Any]) -> ApiError:
    return ApiError(409, "gap", message, position=position)
