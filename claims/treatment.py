"""The treatment a hospital attests and an insurer pays: one FHIR Claim, flattened.

A `Treatment` is what travels inside a `TreatmentCredential` (as its
`credentialSubject.treatment`), what the joint duplicate check keys on, and what
adjudication prices. It is built from FHIR by `claims.fhir_intake` on the
hospital's side and rebuilt from a verified credential on the insurer's side
with `Treatment.from_subject`; both directions go through this one class so
the two sides cannot drift apart.

Amounts are `Decimal` in the claim's currency; dates are ISO 8601 strings with
their time zone, exactly as the hospital's FHIR data gave them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from claims.money import AmountError, parse_amount

__all__ = ["Line", "Treatment"]


@dataclass(frozen=True)
class Line:
    """One billed line of a claim (FHIR `Claim.item`)."""

    sequence: int
    system: str
    code: str
    display: str
    amount: Decimal
    """The line's net amount; see `Treatment` for lines FHIR left unpriced."""


@dataclass(frozen=True)
class Treatment:
    """One treatment as a hospital attests it: a FHIR Claim and its encounter."""

    invoice: str
    """The hospital's claim id (FHIR `Claim.id`): the invoice number."""
    encounter: str
    """The encounter the claim bills (FHIR `Encounter.id`)."""
    patient_ref: str
    """The hospital-asserted patient identifier (medical record number)."""
    provider: str
    """The hospital's organisation id in its own FHIR data."""
    provider_name: str
    claim_type: str
    """FHIR claim-type code: institutional, professional, pharmacy, oral, vision."""
    start: str
    end: str
    currency: str
    lines: tuple[Line, ...]
    diagnoses: tuple[str, ...] = field(default=())
    """Diagnosis codes as `system|code`."""
    total: Decimal = Decimal("0")
    """The billed total: the sum of `lines` (see `claims.fhir_intake` for the rule)."""

    @property
    def service_date(self) -> str:
        """The calendar date of service, `YYYY-MM-DD`, as the hospital recorded it."""
        return self.start[:10]

    @property
    def procedure_codes(self) -> tuple[str, ...]:
        return tuple(sorted(f"{line.system}|{line.code}" for line in self.lines))

    def to_subject(self) -> dict[str, Any]:
        """The JSON form carried in `credentialSubject.treatment`.

        Amounts become strings so that JCS canonicalisation never has to
        represent a binary float.
        """
        data = asdict(self)
        data["total"] = str(self.total)
        data["lines"] = [
            {**asdict(line), "amount": str(line.amount)} for line in self.lines
        ]
        data["diagnoses"] = list(self.diagnoses)
        return data

    @classmethod
    def from_subject(cls, data: dict[str, Any]) -> Treatment:
        """Rebuild a treatment from `credentialSubject.treatment`.

        Raises `ValueError` or `KeyError` (the caller turns them into its own
        error) when a field is missing or has the wrong type.
        """
        lines = tuple(
            Line(
                sequence=int(item["sequence"]),
                system=str(item["system"]),
                code=str(item["code"]),
                display=str(item.get("display", "")),
                amount=_amount(item["amount"], "amount"),
            )
            for item in data["lines"]
        )
        return cls(
            invoice=str(data["invoice"]),
            encounter=str(data["encounter"]),
            patient_ref=str(data["patient_ref"]),
            provider=str(data["provider"]),
            provider_name=str(data.get("provider_name", "")),
            claim_type=str(data["claim_type"]),
            start=str(data["start"]),
            end=str(data["end"]),
            currency=str(data["currency"]),
            lines=lines,
            diagnoses=tuple(str(code) for code in data.get("diagnoses", ())),
            total=_amount(data["total"], "total"),
        )


def _amount(value: object, name: str) -> Decimal:
    try:
        return parse_amount(value)
    except AmountError as problem:
        raise ValueError(f"the treatment's {name} {problem}") from None
