"""The client's one error: an error body of the API, `{code, message, details}`, as an exception."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["ApiError"]


class ApiError(Exception):
    """The API answered with an error.

    Its text is the server's `code` and `message`, which by the API's contract carry no token,
    password or submitted value; the request that caused it is not part of it.
    """

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"ApiError(status={self.status}, code={self.code!r}, message={self.message!r})"

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """The error of a response that has been read (any body: a proxy's HTML page too)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            details = body.get("details")
            return cls(
                response.status_code,
                body["code"],
                str(body.get("message", "")),
                details if isinstance(details, dict) else {},
            )
        return cls(response.status_code, "http_error", response.reason_phrase, {})
