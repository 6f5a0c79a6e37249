"""The errors `mpc_lite` raises; every one derives from `MpcError`.

    MpcError
    ├── InvalidInput       an input to be keyed, shared or scored is malformed
    ├── InvalidPoint       bytes that should be a ristretto255 element are not
    ├── ProtocolError      a protocol message was refused (names party, round)
    └── PartyUnavailable   a party did not answer (names the party)

Messages name parties, rounds, indexes and counts; they never carry keys,
shares, elements or anything else taken from a party's input.
"""

from __future__ import annotations

__all__ = [
    "InvalidInput",
    "InvalidPoint",
    "MpcError",
    "PartyUnavailable",
    "ProtocolError",
]


class MpcError(Exception):
    """Raised when a multi-party computation cannot be completed soundly."""


class InvalidInput(MpcError, ValueError):
    """Raised when an input to be keyed, shared or scored is malformed."""


class InvalidPoint(MpcError):
    """Raised when bytes are not a canonical, non-identity ristretto255 element."""


class ProtocolError(MpcError):
    """Raised when a party refuses a protocol message.

    `party` is the party the message claims to come from (the one at fault as
    far as the recipient can tell); `round` is the round the message claims.
    """

    def __init__(self, message: str, *, party: str, round: int) -> None:
        super().__init__(message)
        self.party = party
        self.round = round


class PartyUnavailable(MpcError):
    """Raised when a party does not send or cannot receive a protocol message."""

    def __init__(self, message: str, *, party: str, round: int | None = None) -> None:
        super().__init__(message)
        self.party = party
        self.round = round
