"""The gateway's one error: a refused request, with its HTTP status and code.

The server raises it and answers `{"error": code, "detail": message}` with
`status`; the client raises it again from such an answer.
"""

from __future__ import annotations

from claims.errors import ClaimsError

__all__ = ["GatewayError"]


class GatewayError(ClaimsError):
    """Raised when the gateway refuses a request (or cannot be reached: status 0).

    `status` is the HTTP status, `code` a short machine-readable word
    (`bad_token`, `claim_not_found`, ...), the message says what is wrong.
    """

    def __init__(
        self, status: int, code: str, message: str, *, remedy: str | None = None
    ) -> None:
        super().__init__(message, remedy=remedy)
        self.status = status
        self.code = code
