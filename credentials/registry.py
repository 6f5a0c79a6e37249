"""The consortium's register of accredited issuers (hospitals).

Each accreditation is a DID, a display name, and the period it holds,
`valid_from` inclusive to `valid_until` exclusive (open-ended when None). A
DID may have several periods. The register round-trips through a JSON-ready
dict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from credentials._codec import format_datetime, parse_datetime
from credentials.errors import MalformedDocument, UntrustedIssuer

__all__ = ["Accreditation", "TrustedIssuers"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accreditation:
    """One period during which `did` may issue credentials the consortium accepts."""

    did: str
    name: str
    valid_from: datetime
    valid_until: datetime | None

    def covers(self, at: datetime) -> bool:
        return self.valid_from <= at and (
            self.valid_until is None or at < self.valid_until
        )


class TrustedIssuers:
    """Accredited issuer DIDs and when they were accredited."""

    def __init__(self) -> None:
        self._entries: list[Accreditation] = []

    def add(
        self,
        did: str,
        name: str,
        valid_from: datetime,
        valid_until: datetime | None = None,
    ) -> None:
        """Accredit `did` from `valid_from` (inclusive) to `valid_until` (exclusive).

        Raises `ValueError` for a value that is not a DID, naive datetimes, or
        an empty period.
        """
        if not isinstance(did, str) or not did.startswith("did:"):
            raise ValueError("issuer must be a DID")
        for moment in (valid_from, valid_until):
            if moment is not None and moment.utcoffset() is None:
                raise ValueError("accreditation times must be timezone-aware")
        if valid_until is not None and valid_until <= valid_from:
            raise ValueError("accreditation must end after it starts")
        self._entries.append(Accreditation(did, name, valid_from, valid_until))

    def check(self, did: str, at: datetime) -> Accreditation:
        """The accreditation covering `did` at `at`; raises `UntrustedIssuer`."""
        for entry in self._entries:
            if entry.did == did and entry.covers(at):
                return entry
        known = any(entry.did == did for entry in self._entries)
        detail = "was not accredited at" if known else "is not a registered issuer at"
        logger.debug("issuer %s rejected at %s (known=%s)", did, at, known)
        raise UntrustedIssuer(f"issuer {did} {detail} {format_datetime(at)}")

    def name(self, did: str) -> str | None:
        """The display name registered for `did`, if any."""
        return next((entry.name for entry in self._entries if entry.did == did), None)

    def __contains__(self, did: object) -> bool:
        return any(entry.did == did for entry in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that `from_dict` restores."""
        return {
            "issuers": [
                {
                    "did": entry.did,
                    "name": entry.name,
                    "validFrom": format_datetime(entry.valid_from),
                    "validUntil": None
                    if entry.valid_until is None
                    else format_datetime(entry.valid_until),
                }
                for entry in self._entries
            ]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The register a `to_dict()` dict describes; raises `MalformedDocument`."""
        registry = cls()
        try:
            for item in data["issuers"]:
                until = item.get("validUntil")
                registry.add(
                    item["did"],
                    item["name"],
                    parse_datetime(item["validFrom"]),
                    None if until is None else parse_datetime(until),
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedDocument(
                f"trusted issuer register is not usable: {exc}"
            ) from exc
        return registry
