"""Canonical byte encodings of what the joint fraud check matches on.

Two insurers must derive the same bytes from the same treatment or claimant,
whatever their own systems did to the strings, and different things must
never share an encoding. The rules:

* every text field is Unicode-normalised to NFC and encoded as UTF-8; no
  other change (no case folding, no trimming: identifiers are compared as
  the hospital issued them);
* a key starts with a type tag (`mpc_lite/treatment/v1` or
  `mpc_lite/claimant/v1`), so a treatment key never equals a claimant key;
* each field is written as a 4-byte big-endian length and its bytes, in a
  fixed order, so no two field lists share an encoding;
* `treatment_key` fields, in order: hospital DID, invoice number, service
  date, then the number of procedure codes (4 bytes) and each code;
* the service date must be a calendar date written `YYYY-MM-DD` (ISO 8601
  calendar date, extended format);
* procedure codes (`system|code` as `claims.treatment.Treatment` writes
  them) are NFC-normalised, de-duplicated and sorted by their UTF-8 bytes,
  so the order a hospital billed its lines in does not matter.

A malformed field raises `InvalidInput`, naming the field, never its value.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from mpc_lite.errors import InvalidInput

__all__ = ["claimant_key", "treatment_key"]

_TREATMENT_TAG = b"mpc_lite/treatment/v1"
_CLAIMANT_TAG = b"mpc_lite/claimant/v1"
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_FIELD = 4096


def _field(name: str, value: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string")
    data = unicodedata.normalize("NFC", value).encode("utf-8")
    if not data:
        raise InvalidInput(f"{name} must not be empty")
    if len(data) > _MAX_FIELD:
        raise InvalidInput(f"{name} is longer than {_MAX_FIELD} bytes")
    return len(data).to_bytes(4, "big") + data


def _service_date(value: str) -> str:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise InvalidInput("service_date must be an ISO date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput("service_date is not a calendar date") from exc
    return value


def treatment_key(
    hospital_did: str, invoice: str, service_date: str, procedure_codes: list[str]
) -> bytes:
    """The canonical encoding of one treatment (see the module docstring)."""
    if isinstance(procedure_codes, str):
        raise InvalidInput("procedure_codes must be a list of strings")
    codes = sorted({_field("procedure code", code)[4:] for code in procedure_codes})
    parts = [
        _TREATMENT_TAG,
        _field("hospital_did", hospital_did),
        _field("invoice", invoice),
        _field("service_date", _service_date(service_date)),
        len(codes).to_bytes(4, "big"),
    ]
    parts.extend(len(code).to_bytes(4, "big") + code for code in codes)
    return b"".join(parts)


def claimant_key(patient_identifier: str) -> bytes:
    """The canonical encoding of one claimant's identifier."""
    return _CLAIMANT_TAG + _field("patient_identifier", patient_identifier)
