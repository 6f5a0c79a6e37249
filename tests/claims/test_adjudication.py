"""Adjudication: hand-worked policy cases, invariants, FHIR ClaimResponse."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit

from claims.adjudication import (
    Accumulator,
    AdjudicationError,
    InMemoryAccumulators,
    Outcome,
    adjudicate,
    adjudicate_fhir_claim,
    to_claim_response,
    to_explanation_of_benefit,
    withdraw,
)
from claims.fhir_intake import ClaimRefused, load_directory
from claims.policy import Policy
from claims.treatment import Line, Treatment

EXAMPLES = Path(__file__).resolve().parents[2] / "claims" / "examples"
SCT = "http://snomed.info/sct"
D = Decimal

POLICY = Policy.from_dict(
    {
        "insurer": "Example Insurer",
        "plan_id": "EX-1",
        "currency": "USD",
        "effective": {"start": date(2020, 1, 1), "end": date(2030, 12, 31)},
        "benefits": {
            "waiting_period_days": 30,
            "covered_claim_types": ["institutional", "professional", "pharmacy"],
            "annual_deductible": "100",
            "coinsurance": "0.2",
            "per_service_maximum": "1000",
            "annual_limit": "2000",
            "review_threshold": "1500",
            "copay": {"professional": "20"},
        },
        "codes": {
            "excluded": [f"{SCT}|excluded"],
            "preauthorisation": [f"{SCT}|needs-pa"],
        },
    }
)


def _treatment(
    *amounts: str | tuple[str, str],
    claim_type: str = "institutional",
    day: str = "2024-06-01",
    currency: str = "USD",
) -> Treatment:
    """A treatment with one line per amount; `(code, amount)` names the code."""
    lines = []
    for i, spec in enumerate(amounts, start=1):
        code, amount = spec if isinstance(spec, tuple) else (f"svc-{i}", spec)
        lines.append(Line(i, SCT, code, "", D(amount)))
    return Treatment(
        invoice="inv-1",
        encounter="enc-1",
        patient_ref="MRN-1",
        provider="org-1",
        provider_name="EXAMPLE HOSPITAL",
        claim_type=claim_type,
        start=f"{day}T10:00:00+02:00",
        end=f"{day}T11:00:00+02:00",
        currency=currency,
        lines=tuple(lines),
        total=sum((line.amount for line in lines), D(0)),
    )


def _accumulators(deductible_met: str = "0", benefit_paid: str = "0") -> Any:
    store = InMemoryAccumulators()
    store.put(Accumulator("MRN-1", 2024, D(deductible_met), D(benefit_paid)))
    return store


def _codes(reasons: Any) -> list[str]:
    return [reason.code for reason in reasons]


# Each row: treatment, accumulators (deductible met, benefit paid), and per
# line (copay, deductible, coinsurance, limited, benefit), worked by hand.
CASES = {
    "deductible partly met": (
        _treatment("200"),
        ("60", "0"),
        [("0", "40", "32", "0", "128")],
        Outcome.APPROVED,
    ),
    "deductible spans two lines": (
        _treatment("70", "50"),
        ("0", "0"),
        [("0", "70", "0", "0", "0"), ("0", "30", "4", "0", "16")],
        Outcome.APPROVED,
    ),
    "coinsurance only, deductible met": (
        _treatment("99.99"),
        ("100", "0"),
        [("0", "0", "20.00", "0", "79.99")],
        Outcome.APPROVED,
    ),
    "copay across lines, once per claim": (
        _treatment("15", "100", claim_type="professional"),
        ("100", "0"),
        [("15", "0", "0", "0", "0"), ("5", "0", "19", "0", "76")],
        Outcome.APPROVED,
    ),
    "annual limit crossed mid-claim": (
        _treatment("100", "100"),
        ("100", "1900"),
        [("0", "0", "20", "0", "80"), ("0", "0", "20", "60", "20")],
        Outcome.APPROVED,
    ),
    "annual limit exhausted": (
        _treatment("100"),
        ("100", "2000"),
        [("0", "0", "20", "80", "0")],
        Outcome.DENIED,
    ),
    "per-service maximum": (
        _treatment("1500"),
        ("100", "0"),
        [("0", "0", "300", "200", "1000")],
        Outcome.APPROVED,
    ),
    "excluded code beside a payable line": (
        _treatment(("excluded", "300"), "50"),
        ("100", "0"),
        [("0", "0", "0", "0", "0"), ("0", "0", "10", "0", "40")],
        Outcome.PARTIALLY_APPROVED,
    ),
    "zero-priced diagnosis line": (
        _treatment("125", "0"),
        ("100", "0"),
        [("0", "0", "25", "0", "100"), ("0", "0", "0", "0", "0")],
        Outcome.APPROVED,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hand_worked_case(name: str) -> None:
    treatment, (met, paid), expected, outcome = CASES[name]
    before = _accumulators(met, paid)
    result = adjudicate(treatment, POLICY, before)

    got = [
        (line.copay, line.deductible, line.coinsurance, line.limited, line.benefit)
        for line in result.lines
    ]
    assert got == [tuple(D(v) for v in row) for row in expected]
    assert result.outcome is outcome
    for line in result.lines:
        reductions = (line.copay, line.deductible, line.coinsurance, line.limited)
        assert line.benefit == line.eligible - sum(reductions)
    payable = sum(D(row[4]) for row in expected)
    assert result.payable == payable
    assert result.accumulator.benefit_paid == D(paid) + payable
    taken = sum(D(row[1]) for row in expected)
    assert result.accumulator.deductible_met == D(met) + taken
    # Nothing was written: the caller stores the new accumulator.
    assert before.get("MRN-1", 2024) == Accumulator("MRN-1", 2024, D(met), D(paid))


def test_every_reduction_carries_its_reason() -> None:
    result = adjudicate(_treatment("100", "100"), POLICY, _accumulators("60", "1900"))
    first, second = result.lines
    assert _codes(first.reasons) == ["deductible", "coinsurance"]
    assert _codes(second.reasons) == ["coinsurance", "ar002"]


def test_coinsurance_rounds_half_even_to_cents() -> None:
    policy = replace(POLICY, coinsurance=D("0.5"))
    (line,) = adjudicate(_treatment("10.25"), policy, _accumulators("100")).lines
    assert line.coinsurance == D("5.12")  # 5.125 rounds to the even cent
    assert line.benefit == D("5.13")


def test_waiting_period_denies_the_whole_claim() -> None:
    joined = date(2024, 3, 1)
    result = adjudicate(
        _treatment("100", "50", day="2024-03-15"),
        POLICY,
        _accumulators(),
        member_since=joined,
    )
    assert result.outcome is Outcome.DENIED
    assert _codes(result.reasons) == ["waiting-period"]
    assert all(line.eligible == 0 and line.denied for line in result.lines)
    assert result.accumulator.deductible_met == 0

    later = adjudicate(
        _treatment("100", day="2024-03-31"),
        POLICY,
        _accumulators(),
        member_since=joined,
    )
    assert later.outcome is Outcome.APPROVED


def test_service_before_enrolment_is_not_in_force() -> None:
    result = adjudicate(
        _treatment("100"), POLICY, _accumulators(), member_since=date(2024, 7, 1)
    )
    assert _codes(result.reasons) == ["not-in-force"]


def test_service_outside_the_effective_period_is_denied() -> None:
    result = adjudicate(_treatment("100", day="2031-01-01"), POLICY, _accumulators())
    assert result.outcome is Outcome.DENIED
    assert _codes(result.reasons) == ["not-in-force"]


def test_missing_preauthorisation_denies_the_line() -> None:
    treatment = _treatment(("needs-pa", "400"), "100")
    result = adjudicate(treatment, POLICY, _accumulators("100"))
    assert result.outcome is Outcome.PARTIALLY_APPROVED
    assert _codes(result.lines[0].reasons) == ["preauth-missing"]

    approved = adjudicate(
        treatment, POLICY, _accumulators("100"), preauthorised={f"{SCT}|needs-pa"}
    )
    assert approved.outcome is Outcome.APPROVED
    assert approved.lines[0].benefit == D("320")


def test_claim_type_not_covered_is_ar001() -> None:
    result = adjudicate(_treatment("80", claim_type="vision"), POLICY, _accumulators())
    assert result.outcome is Outcome.DENIED
    assert [(r.system, r.code) for r in result.reasons] == [
        ("http://terminology.hl7.org/CodeSystem/adjudication-reason", "ar001")
    ]


def test_other_currency_is_denied() -> None:
    result = adjudicate(_treatment("80", currency="EUR"), POLICY, _accumulators())
    assert _codes(result.reasons) == ["currency"]


def test_large_payable_needs_review() -> None:
    policy = replace(POLICY, per_service_maximum=None)
    result = adjudicate(_treatment("3000"), policy, _accumulators("100"))
    assert result.outcome is Outcome.APPROVED
    assert result.needs_review
    assert result.review_reason == (
        "payable 2000.00 USD exceeds the review threshold 1500"
    )
    small = adjudicate(_treatment("100"), policy, _accumulators("100"))
    assert not small.needs_review and small.review_reason is None


def test_service_date_must_be_a_date() -> None:
    broken = replace(_treatment("10"), start="yesterday")
    with pytest.raises(AdjudicationError, match="inv-1: service date is not"):
        adjudicate(broken, POLICY, _accumulators())


def test_example_bundles_under_example_policies() -> None:
    """Lines add up for every claim of the shipped demo data."""
    treatments = [t for _, t in load_directory(EXAMPLES / "bundles").treatments]
    outcomes = set()
    for number in (1, 2, 3):
        policy = Policy.from_toml(EXAMPLES / f"insurer-{number}.toml")
        store = InMemoryAccumulators()
        for treatment in sorted(treatments, key=lambda t: t.start):
            result = adjudicate(treatment, policy, store)
            store.put(result.accumulator)
            outcomes.add(result.outcome)
            assert result.submitted == treatment.total
            for line in result.lines:
                reductions = line.copay + line.deductible + line.coinsurance
                assert line.benefit == line.eligible - reductions - line.limited
                assert line.benefit >= 0
    assert outcomes == set(Outcome)


class TestClaimResponse:
    CREATED = datetime(2024, 6, 2, 9, 30, tzinfo=UTC)

    def _response(self, treatment: Treatment, **kwargs: Any) -> dict[str, Any]:
        result = adjudicate(treatment, POLICY, _accumulators(), **kwargs)
        return to_claim_response(
            treatment,
            result,
            insurer="Example Insurer",
            claim_ref="clm-42",
            created=self.CREATED,
        )

    def test_parses_as_an_r4_claim_response(self) -> None:
        data = self._response(_treatment("200", ("excluded", "50")))
        parsed = ClaimResponse.model_validate(data)
        assert parsed.id == "clm-42"
        assert parsed.outcome == "complete"
        assert data["disposition"] == "partially approved: 1 of 2 lines denied"
        first = {
            entry["category"]["coding"][0]["code"]: entry
            for entry in data["item"][0]["adjudication"]
        }
        assert {k: v["amount"]["value"] for k, v in first.items()} == {
            "submitted": 200.0,
            "eligible": 200.0,
            "deductible": 100.0,
            "coinsurance": 20.0,
            "benefit": 80.0,
        }
        assert first["deductible"]["reason"]["coding"][0]["code"] == "deductible"
        denied = data["item"][1]["adjudication"][1]
        assert denied["amount"]["value"] == 0
        assert denied["reason"]["coding"][0]["code"] == "ar001"
        assert data["payment"]["amount"] == {"value": 80.0, "currency": "USD"}

    def test_review_holds_the_payment(self) -> None:
        data = self._response(_treatment("1000", "1000"))
        ClaimResponse.model_validate(data)
        assert "payment" not in data
        assert "exceeds the review threshold" in data["processNote"][0]["text"]
        assert data["disposition"].endswith("; held for review")

    def test_denied_claim_parses(self) -> None:
        data = self._response(_treatment("10", day="2019-01-01"))
        ClaimResponse.model_validate(data)
        assert data["disposition"] == "denied: Plan not in force on that date"

    def test_created_needs_a_time_zone(self) -> None:
        treatment = _treatment("10")
        result = adjudicate(treatment, POLICY, _accumulators())
        with pytest.raises(AdjudicationError, match="needs a time zone"):
            to_claim_response(
                treatment,
                result,
                insurer="x",
                claim_ref="y",
                created=datetime(2024, 1, 1),
            )


def test_an_accumulator_value_can_be_passed_directly() -> None:
    before = Accumulator("did:key:zMember", 2024, D("60"), D("0"))
    result = adjudicate(_treatment("200"), POLICY, before)
    assert result.member == "did:key:zMember"
    assert result.deductible_met_after == D("100")
    assert result.benefit_paid_after == D("128")
    with pytest.raises(AdjudicationError, match="accumulator is for 2023"):
        adjudicate(_treatment("1"), POLICY, replace(before, year=2023))


def test_reason_summarises_denials() -> None:
    partial = adjudicate(_treatment(("excluded", "5"), "5"), POLICY, _accumulators())
    assert partial.reason == "line 1: Not covered"
    whole = adjudicate(_treatment("5", day="2019-05-05"), POLICY, _accumulators())
    assert whole.reason == "Plan not in force on that date"
    clean = adjudicate(_treatment("5"), POLICY, _accumulators())
    assert clean.reason == ""


class TestFhirClaim:
    """HL7 FHIR R4 v4.0.1 Claim examples (fhir-crucible/fhir_models,
    lib/fhir_models/examples/json/claim-example*.json)."""

    POLICY_1 = Policy.from_toml(EXAMPLES / "insurer-1.toml")
    CREATED = datetime(2014, 8, 17, 12, 0, tzinfo=UTC)

    def test_every_example_adjudicates_or_is_refused(self, shared_dir: Path) -> None:
        folder = shared_dir / "data" / "hl7_r4_examples"
        outcomes: dict[str, str] = {}
        for path in sorted(folder.glob("claim-example*.json")):
            try:
                decision = adjudicate_fhir_claim(path.read_bytes(), self.POLICY_1)
            except ClaimRefused as exc:
                assert exc.errors, path.name
                outcomes[path.name] = f"refused {exc.errors[0].path}"
                continue
            result = decision.adjudication
            outcomes[path.name] = str(result.outcome)
            for build, model in (
                (to_claim_response, ClaimResponse),
                (to_explanation_of_benefit, ExplanationOfBenefit),
            ):
                data = build(
                    decision.treatment,
                    result,
                    insurer=self.POLICY_1.insurer,
                    claim_ref="r-1",
                    created=self.CREATED,
                )
                model.model_validate(data)
        assert len(outcomes) == 15
        # A contained Patient with no identifier cannot be matched to a member.
        assert outcomes["claim-example-oral-contained.json"] == "refused Claim.patient"
        # Insurer 1 covers no oral or vision care.
        assert outcomes["claim-example-oral-average.json"] == "denied"
        assert outcomes["claim-example-vision.json"] == "denied"
        assert outcomes["claim-example-professional.json"] == "approved"
        assert outcomes["claim-example-pharmacy.json"] == "approved"

    def test_professional_example_is_priced(self, shared_dir: Path) -> None:
        path = (
            shared_dir / "data" / "hl7_r4_examples" / "claim-example-professional.json"
        )
        decision = adjudicate_fhir_claim(
            path.read_text(encoding="utf-8"), self.POLICY_1
        )
        # 75.00 billed; copay 20, the other 55 applied to the 250 deductible.
        (line,) = decision.adjudication.lines
        assert (line.copay, line.deductible, line.benefit) == (D("20"), D("55"), 0)
        assert decision.treatment.patient_ref == "Patient/1"

    def test_text_that_is_not_json_is_refused(self) -> None:
        with pytest.raises(AdjudicationError, match="not valid JSON"):
            adjudicate_fhir_claim("{claim", self.POLICY_1)

    def test_eob_holds_lines_and_payment(self) -> None:
        treatment = _treatment("200", "0")
        result = adjudicate(treatment, POLICY, _accumulators("100"))
        eob = to_explanation_of_benefit(
            treatment, result, insurer="Ex", claim_ref="r-2", created=self.CREATED
        )
        ExplanationOfBenefit.model_validate(eob)
        assert [item["net"]["value"] for item in eob["item"]] == [200.0, 0.0]
        assert eob["insurance"] == [{"focal": True, "coverage": {"display": "EX-1"}}]
        assert eob["payment"]["amount"]["value"] == 160.0


class TestWithdraw:
    def test_withdraw_takes_a_decision_back_out(self) -> None:
        store = _accumulators("40", "300")
        first = adjudicate(_treatment("200"), POLICY, store)
        store.put(first.accumulator)
        assert withdraw(first, store.get("MRN-1", 2024)) == Accumulator(
            "MRN-1", 2024, D("40"), D("300")
        )

    def test_withdraw_refuses_another_year(self) -> None:
        result = adjudicate(_treatment("200"), POLICY, _accumulators())
        with pytest.raises(AdjudicationError, match="another member or year"):
            withdraw(result, Accumulator("MRN-1", 2023))

    def test_withdraw_refuses_a_decision_never_counted(self) -> None:
        result = adjudicate(_treatment("200"), POLICY, _accumulators())
        with pytest.raises(AdjudicationError, match="was not counted"):
            withdraw(result, Accumulator("MRN-1", 2024))


class TestResubmissionAndCorrection:
    """The last two hand-worked cases of issue 6 (plan `POLICY` above)."""

    def test_resubmission_gets_the_same_answer(self) -> None:
        store = _accumulators("60", "0")
        first = adjudicate(_treatment("200"), POLICY, store)
        again = adjudicate(_treatment("200"), POLICY, store)
        assert again == first
        # Counted once: 40 to the deductible, (200 - 40) * 0.8 = 128 paid.
        store.put(first.accumulator)
        assert store.get("MRN-1", 2024) == Accumulator("MRN-1", 2024, D(100), D(128))

    def test_correction_replaces_the_earlier_decision(self) -> None:
        """A 200.00 claim corrected to 150.00, deductible 60 of 100 met before.

        Earlier: deductible 40, coinsurance 32, benefit 128 -> year (100, 128).
        Withdrawn: back to (60, 0). Correction: deductible 40, coinsurance
        (150 - 40) * 0.2 = 22, benefit 88 -> year (100, 88).
        """
        store = _accumulators("60", "0")
        earlier = adjudicate(_treatment("200"), POLICY, store)
        store.put(earlier.accumulator)

        store.put(withdraw(earlier, store.get("MRN-1", 2024)))
        assert store.get("MRN-1", 2024) == Accumulator("MRN-1", 2024, D(60), D(0))
        corrected = adjudicate(_treatment("150"), POLICY, store)
        store.put(corrected.accumulator)

        line = corrected.lines[0]
        assert (line.deductible, line.coinsurance, line.benefit) == (
            D(40),
            D(22),
            D(88),
        )
        assert store.get("MRN-1", 2024) == Accumulator("MRN-1", 2024, D(100), D(88))
