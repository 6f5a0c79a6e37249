"""FHIR R4 intake: Synthea bundles, the residual pricing rule, bad files."""

from __future__ import annotations

import functools
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from claims.errors import ClaimsError
from claims.fhir_intake import (
    BundleInvalid,
    BundleUnreadable,
    ClaimRefused,
    IntakeError,
    IntakeResult,
    NotABundle,
    load_directory,
    prior_claim,
    read_bundle,
    treatment_from_claim,
    validate_claim,
)
from credentials.parse import read_user_file

EXAMPLES = Path(__file__).resolve().parents[2] / "claims" / "examples" / "bundles"
MR_TYPE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
    ]
}


@pytest.fixture(scope="module")
def synthea_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "synthea_r4"


@pytest.fixture(scope="module")
def synthea(synthea_dir: Path) -> IntakeResult:
    """Every Synthea bundle of ../shared, read once for the module.

    Source: smart-on-fhir/generated-sample-data R4/SYNTHEA (see SOURCE.txt).
    """
    return load_directory(synthea_dir)


def _resources(path: Path, kind: str) -> list[dict[str, Any]]:
    entries = json.loads(path.read_text(encoding="utf-8")).get("entry", [])
    return [e["resource"] for e in entries if e["resource"]["resourceType"] == kind]


def _bundle(
    *,
    items: list[dict[str, Any]] | None = None,
    total: dict[str, Any] | None = None,
    claim: dict[str, Any] | None = None,
    identifiers: list[dict[str, Any]] | None = None,
    bundle_type: str = "transaction",
) -> dict[str, Any]:
    """A one-claim bundle in Synthea's shape, for targeted cases."""
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": identifiers
        if identifiers is not None
        else [{"type": MR_TYPE, "system": "http://hospital.example", "value": "MRN-1"}],
        "name": [{"family": "Testperson", "given": ["Pat"]}],
    }
    org = {"resourceType": "Organization", "id": "o1", "name": "EXAMPLE HOSPITAL"}
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "urn:uuid:p1"},
        "period": {"start": "2024-03-01T10:00:00+01:00"},
    }
    base_claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": "c1",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "urn:uuid:p1"},
        "billablePeriod": {
            "start": "2024-03-01T10:00:00+01:00",
            "end": "2024-03-01T10:30:00+01:00",
        },
        "created": "2024-03-01T10:30:00+01:00",
        "provider": {"reference": "urn:uuid:o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "x"}}],
        "item": items
        if items is not None
        else [
            {
                "sequence": 1,
                "productOrService": {
                    "coding": [
                        {"system": "http://snomed.info/sct", "code": "185345009"}
                    ]
                },
                "encounter": [{"reference": "urn:uuid:e1"}],
            },
            {
                "sequence": 2,
                "productOrService": {
                    "coding": [{"system": "http://snomed.info/sct", "code": "40055000"}]
                },
            },
            {
                "sequence": 3,
                "productOrService": {
                    "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]
                },
                "net": {"value": 140.52, "currency": "USD"},
            },
        ],
        "total": total if total is not None else {"value": 265.52, "currency": "USD"},
    }
    base_claim.update(claim or {})
    resources = [patient, org, encounter, base_claim]
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


class TestSynthea:
    def test_one_treatment_per_claim_resource(
        self, synthea: IntakeResult, synthea_dir: Path
    ) -> None:
        expected = sum(
            len(_resources(path, "Claim")) for path in synthea_dir.glob("*.json")
        )
        assert expected > 400
        assert synthea.errors == []
        assert len(synthea.treatments) == expected
        invoices = {t.invoice for _, t in synthea.treatments}
        assert len(invoices) == expected

    def test_every_total_is_the_sum_of_its_lines(self, synthea: IntakeResult) -> None:
        for _, treatment in synthea.treatments:
            assert treatment.total == sum(line.amount for line in treatment.lines)
            assert all(line.amount >= 0 for line in treatment.lines)

    def test_fields_are_filled_from_the_claim(self, synthea: IntakeResult) -> None:
        kinds = {t.claim_type for _, t in synthea.treatments}
        assert kinds == {"institutional", "pharmacy"}
        for patient_id, treatment in synthea.treatments:
            assert treatment.currency == "USD"
            assert treatment.encounter and treatment.provider_name
            assert treatment.start[-6] in "+-"  # the time zone is kept
            bundle = next(b for b in synthea.bundles if patient_id in b.patients)
            assert treatment.patient_ref == bundle.patients[patient_id].mrn
            assert treatment.encounter in bundle.encounters

    def test_diagnosis_references_resolve_to_condition_codes(
        self, synthea: IntakeResult
    ) -> None:
        coded = [t for _, t in synthea.treatments if t.diagnoses]
        assert coded
        for treatment in coded:
            assert all(
                code.startswith("http://snomed.info/sct|")
                for code in treatment.diagnoses
            )

    def test_hospital_bundle_organisations_are_merged(
        self, synthea: IntakeResult, synthea_dir: Path
    ) -> None:
        hospital = next(synthea_dir.glob("hospitalInformation*.json"))
        for org in _resources(hospital, "Organization"):
            assert synthea.organizations[org["id"]].name == org["name"]


class TestResidualRule:
    def test_residual_goes_to_the_first_unpriced_line(self, tmp_path: Path) -> None:
        contents = read_bundle(_write(tmp_path, "one.json", _bundle()))
        ((patient_id, treatment),) = contents.treatments
        assert patient_id == "p1"
        amounts = [line.amount for line in treatment.lines]
        assert amounts == [Decimal("125.00"), Decimal(0), Decimal("140.52")]
        assert treatment.total == Decimal("265.52")
        assert treatment.patient_ref == "MRN-1"
        assert treatment.provider_name == "EXAMPLE HOSPITAL"

    def test_total_below_priced_lines_is_refused(self, tmp_path: Path) -> None:
        data = _bundle(total={"value": 100, "currency": "USD"})
        contents = read_bundle(_write(tmp_path, "low.json", data))
        assert contents.treatments == []
        ((refused),) = contents.refused
        assert refused.claim_id == "c1"
        assert [e.path for e in refused.errors] == ["Claim.total"]
        assert "less than the sum" in refused.errors[0].message

    def test_residual_without_unpriced_line_is_refused(self, tmp_path: Path) -> None:
        items = [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": "s", "code": "a"}]},
                "encounter": [{"reference": "urn:uuid:e1"}],
                "net": {"value": 10, "currency": "USD"},
            }
        ]
        data = _bundle(items=items, total={"value": 50, "currency": "USD"})
        contents = read_bundle(_write(tmp_path, "high.json", data))
        assert "no item is unpriced" in contents.refused[0].errors[0].message

    def test_a_total_no_store_could_hold_is_refused(self, tmp_path: Path) -> None:
        data = _bundle(total={"value": 1e20, "currency": "USD"})
        contents = read_bundle(_write(tmp_path, "huge.json", data))
        assert contents.treatments == []
        assert [str(e) for e in contents.refused[0].errors] == [
            "Claim.total.value: is more than the largest amount accepted, "
            "999999999999.99"
        ]

    def test_missing_total_is_the_sum_of_nets(self, tmp_path: Path) -> None:
        data = _bundle()
        del data["entry"][3]["resource"]["total"]
        ((_, treatment),) = read_bundle(
            _write(tmp_path, "nototal.json", data)
        ).treatments
        assert treatment.total == Decimal("140.52")
        assert [line.amount for line in treatment.lines][0] == 0

    def test_item_currency_must_match_the_total(self, tmp_path: Path) -> None:
        data = _bundle()
        data["entry"][3]["resource"]["item"][2]["net"]["currency"] = "EUR"
        contents = read_bundle(_write(tmp_path, "eur.json", data))
        paths = [e.path for e in contents.refused[0].errors]
        assert paths == ["Claim.item[2].net.currency"]


class TestReferences:
    def test_mrn_falls_back_to_the_synthea_identifier(self, tmp_path: Path) -> None:
        ident = [
            {"system": "https://github.com/synthetichealth/synthea", "value": "S-9"}
        ]
        data = _bundle(identifiers=ident)
        ((_, treatment),) = read_bundle(_write(tmp_path, "syn.json", data)).treatments
        assert treatment.patient_ref == "S-9"

    def test_patient_without_record_number_is_refused(self, tmp_path: Path) -> None:
        contents = read_bundle(_write(tmp_path, "n.json", _bundle(identifiers=[])))
        assert "no medical record number" in str(contents.refused[0].errors[0])

    def test_unresolved_encounter_names_the_item(self, tmp_path: Path) -> None:
        data = _bundle()
        data["entry"][3]["resource"]["item"][0]["encounter"] = [
            {"reference": "Encounter/missing"}
        ]
        contents = read_bundle(_write(tmp_path, "enc.json", data))
        assert [e.path for e in contents.refused[0].errors] == [
            "Claim.item[0].encounter[0]"
        ]

    def test_type_slash_id_references_resolve(self, tmp_path: Path) -> None:
        data = _bundle(
            claim={
                "patient": {"reference": "Patient/p1"},
                "provider": {"reference": "http://fhir.example/Organization/o1"},
            },
            bundle_type="collection",
        )
        ((_, treatment),) = read_bundle(_write(tmp_path, "ids.json", data)).treatments
        assert treatment.provider == "o1"

    def test_example_bundles_read_cleanly(self) -> None:
        result = load_directory(EXAMPLES)
        assert result.errors == []
        assert len(result.treatments) == 39
        assert {t.claim_type for _, t in result.treatments} == {
            "institutional",
            "pharmacy",
            "professional",
        }
        # Conditional references name the hospital in hospitals.json.
        assert all(t.provider_name for _, t in result.treatments)
        assert sum(len(b.encounters) for b in result.bundles) == 36


class TestBadBundles:
    def test_non_json_is_unreadable(self, tmp_path: Path) -> None:
        with pytest.raises(
            BundleUnreadable,
            match=r"^broken\.json: the file is not valid JSON \(line 1, column 2: ",
        ):
            read_bundle(_write(tmp_path, "broken.json", "{not json"))

    def test_other_resource_is_not_a_bundle(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "patient.json", {"resourceType": "Patient"})
        with pytest.raises(NotABundle, match="resourceType is 'Patient'"):
            read_bundle(path)

    def test_searchset_is_not_supported(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "s.json", _bundle(bundle_type="searchset"))
        with pytest.raises(BundleInvalid, match="Bundle.type 'searchset'"):
            read_bundle(path)

    def test_validation_failure_names_the_field_not_the_value(
        self, tmp_path: Path
    ) -> None:
        data = _bundle()
        data["entry"][0]["resource"]["birthDate"] = "Secretvalue"
        path = _write(tmp_path, "invalid.json", data)
        with pytest.raises(BundleInvalid) as caught:
            read_bundle(path)
        message = str(caught.value)
        assert "Bundle.entry[0] Patient.birthDate" in message
        assert "Secretvalue" not in message and "Testperson" not in message
        assert isinstance(caught.value, IntakeError | ClaimsError)

    def test_files_that_never_end_are_skipped_unread(self, tmp_path: Path) -> None:
        """A FIFO nobody writes to hung the demo; /dev/zero filled the memory."""
        _write(tmp_path, "a_good.json", _bundle())
        os.mkfifo(tmp_path / "b_fifo.json")
        (tmp_path / "c_zero.json").symlink_to("/dev/zero")
        result = load_directory(tmp_path)
        assert [b.source for b in result.bundles] == ["a_good.json"]
        assert [(e.file, e.message) for e in result.errors] == [
            ("b_fifo.json", "not a regular file"),
            ("c_zero.json", "not a regular file"),
        ]

    def test_a_bundle_over_the_limit_is_refused_unread(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = _write(tmp_path, "big.json", _bundle())
        monkeypatch.setattr(
            "claims.fhir_intake.read_user_file",
            functools.partial(read_user_file, max_bytes=100),
        )
        with pytest.raises(BundleUnreadable) as caught:
            read_bundle(path)
        assert str(caught.value) == (
            f"big.json: the file is {path.stat().st_size} bytes; the limit is 100"
        )

    def test_a_refused_claims_long_id_is_cut_in_messages(self, tmp_path: Path) -> None:
        data = _bundle(total={"value": 1, "currency": "USD"})  # refused: too low
        data["entry"][3]["resource"]["id"] = "x" * 100_000
        ((refused),) = read_bundle(_write(tmp_path, "long.json", data)).refused
        assert refused.claim_id == "x" * 40 + "... (100000 characters)"

    def test_a_bad_bundle_is_reported_and_skipped(self, tmp_path: Path) -> None:
        _write(tmp_path, "a_good.json", _bundle())
        _write(tmp_path, "b_broken.json", "[1, 2")
        bad = _bundle()
        bad["entry"][3]["resource"]["status"] = 7
        _write(tmp_path, "c_invalid.json", bad)
        _write(
            tmp_path, "d_refused.json", _bundle(total={"value": 1, "currency": "USD"})
        )
        bad_patient = _bundle()
        bad_patient["entry"][0]["resource"]["gender"] = 7
        _write(tmp_path, "e_invalid_patient.json", bad_patient)
        result = load_directory(tmp_path)
        # A Claim the R4B model refuses is refused alone; any other resource
        # the model refuses makes the bundle unusable.
        assert [b.source for b in result.bundles] == [
            "a_good.json",
            "c_invalid.json",
            "d_refused.json",
        ]
        assert len(result.treatments) == 1
        errors = {e.file: e.message for e in result.errors}
        assert set(errors) == {
            "b_broken.json",
            "c_invalid.json",
            "d_refused.json",
            "e_invalid_patient.json",
        }
        assert errors["c_invalid.json"].startswith("Claim.status")
        assert errors["d_refused.json"].startswith("Claim.total")
        assert "Bundle.entry[0] Patient.gender" in errors["e_invalid_patient.json"]
        refused = [str(e) for e in result.errors if e.claim_id is not None]
        assert len(refused) == 2
        assert refused[0].startswith("claim Claim/c1 skipped: Claim.status")
        assert refused[1].startswith("claim Claim/c1 skipped: Claim.total: ")
        assert refused[1].endswith(" (d_refused.json)")

    def test_a_claim_the_model_refuses_is_named_and_its_entry_index_kept(
        self, tmp_path: Path
    ) -> None:
        """Claims are validated apart; the bundle's other entries keep their
        places in messages."""
        data = _bundle()
        data["entry"][3]["resource"]["total"]["value"] = "NaN"
        data["entry"].append(
            {
                "fullUrl": "urn:uuid:x",
                "resource": {"resourceType": "Patient", "gender": 7},
            }
        )
        _write(tmp_path, "nan.json", data)
        with pytest.raises(BundleInvalid) as caught:
            read_bundle(tmp_path / "nan.json")
        assert f"Bundle.entry[{len(data['entry']) - 1}] Patient.gender" in str(
            caught.value
        )
        del data["entry"][-1]
        contents = read_bundle(_write(tmp_path, "nan.json", data))
        assert contents.treatments == []
        ((refused),) = contents.refused
        assert refused.claim_id == "c1"
        assert [e.path for e in refused.errors][0].startswith("Claim.total")


def _claim(**changes: Any) -> dict[str, Any]:
    """The Claim of `_bundle()`, standalone, with top-level changes."""
    claim = _bundle()["entry"][3]["resource"]
    claim.update(changes)
    return claim


def _paths(claim: dict[str, Any]) -> list[str]:
    return [str(error) for error in validate_claim(claim)]


class TestValidateClaim:
    def test_clean_claim_has_no_errors(self) -> None:
        assert validate_claim(_claim()) == []

    def test_hl7_examples_are_valid(self, shared_dir: Path) -> None:
        """HL7 FHIR R4 v4.0.1 examples (fhir-crucible/fhir_models,
        lib/fhir_models/examples/json/claim-example*.json)."""
        files = sorted((shared_dir / "data" / "hl7_r4_examples").glob("claim-*.json"))
        assert len(files) == 15
        for path in files:
            claim = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
            assert validate_claim(claim) == [], path.name

    def test_not_a_claim(self) -> None:
        assert _paths({"resourceType": "Patient"}) == [
            "Claim.resourceType: must be 'Claim'"
        ]

    def test_status_outside_its_value_set(self) -> None:
        assert _paths(_claim(status="paid")) == [
            "Claim.status: not in the fm-status value set"
        ]

    def test_use_outside_its_value_set(self) -> None:
        assert _paths(_claim(use="bill")) == [
            "Claim.use: not in the claim-use value set"
        ]

    def test_unknown_hl7_claim_type(self) -> None:
        claim = _claim()
        claim["type"]["coding"][0]["code"] = "dental"
        assert _paths(claim) == ["Claim.type.coding[0].code: not a claim-type code"]

    def test_empty_insurance(self) -> None:
        assert _paths(_claim(insurance=[])) == [
            "Claim.insurance: empty; one focal coverage needed"
        ]

    def test_no_focal_insurance(self) -> None:
        insurance = [{"sequence": 1, "focal": False, "coverage": {"display": "x"}}]
        assert _paths(_claim(insurance=insurance)) == [
            "Claim.insurance: exactly one must be focal"
        ]

    def test_money_without_currency(self) -> None:
        claim = _claim()
        del claim["item"][2]["net"]["currency"]
        assert _paths(claim) == ["Claim.item[2].net.currency: missing"]

    @pytest.mark.parametrize("currency", ["usd", "ABC", "XXX"])
    def test_currency_not_in_iso_4217(self, currency: str) -> None:
        claim = _claim(total={"value": 1, "currency": currency})
        assert _paths(claim) == ["Claim.total.currency: not an ISO 4217 code"]

    def test_negative_amount(self) -> None:
        claim = _claim()
        claim["item"][2]["net"]["value"] = -5
        assert _paths(claim) == ["Claim.item[2].net.value: is negative"]

    def test_a_billable_period_that_ends_before_it_starts(self) -> None:
        claim = _claim()
        claim["billablePeriod"] = {
            "start": "2024-03-01T10:30:00+01:00",
            "end": "2024-03-01T10:00:00+01:00",
        }
        assert _paths(claim) == ["Claim.billablePeriod.end: is before its start"]
        claim["billablePeriod"] = {"start": "2024-03-01", "end": "2024-03"}
        assert _paths(claim) == []  # a partial date is not compared

    def test_amount_too_large_to_store(self) -> None:
        claim = _claim()
        claim["item"][2]["net"]["value"] = 1e300
        assert _paths(claim) == [
            "Claim.item[2].net.value: is more than the largest amount accepted, "
            "999999999999.99"
        ]

    def test_date_time_without_time_zone(self) -> None:
        claim = _claim(billablePeriod={"start": "2024-03-01T10:00:00"})
        # The R4B model's regex refuses it too; ours says why.
        assert "Claim.billablePeriod.start: date-time without a time zone" in (
            _paths(claim)
        )

    def test_contained_reference_that_does_not_resolve(self) -> None:
        claim = _claim(patient={"reference": "#nobody"})
        assert _paths(claim) == ["Claim.patient: no contained resource has this id"]

    def test_reference_to_the_wrong_type(self) -> None:
        claim = _claim(patient={"reference": "Organization/o1"})
        assert _paths(claim) == ["Claim.patient: must refer to Patient"]

    def test_item_sequence_link_that_does_not_resolve(self) -> None:
        claim = _claim()
        claim["item"][1]["diagnosisSequence"] = [4]
        assert _paths(claim) == [
            "Claim.item[1].diagnosisSequence[0]: no diagnosis entry has this sequence"
        ]

    def test_repeated_item_sequence(self) -> None:
        claim = _claim()
        claim["item"][2]["sequence"] = 1
        assert _paths(claim) == ["Claim.item[2].sequence: repeats"]

    def test_missing_required_element(self) -> None:
        claim = _claim()
        del claim["created"]
        assert "Claim.created: missing" in _paths(claim)

    def test_model_error_names_the_field(self) -> None:
        claim = _claim()
        claim["item"][0]["sequence"] = "first"
        assert any(p.startswith("Claim.item[0].sequence: ") for p in _paths(claim))

    def test_bundle_claims_are_validated_too(self, tmp_path: Path) -> None:
        data = _bundle()
        data["entry"][3]["resource"]["insurance"] = []
        contents = read_bundle(_write(tmp_path, "noins.json", data))
        assert [e.path for e in contents.refused[0].errors] == ["Claim.insurance"]


class TestStandaloneClaim:
    def test_parties_named_by_reference(self) -> None:
        claim = _claim(
            patient={"identifier": {"system": "urn:x", "value": "M-7"}},
            provider={"reference": "Organization/o9"},
        )
        del claim["item"][0]["encounter"]
        treatment = treatment_from_claim(claim)
        assert (treatment.patient_ref, treatment.provider) == ("M-7", "o9")
        assert treatment.encounter == ""
        assert treatment.total == sum(line.amount for line in treatment.lines)

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"status": "cancelled"}, "Claim.status: only an active claim is paid"),
            ({"use": "preauthorization"}, "Claim.use: only use 'claim'"),
            ({"insurance": []}, "Claim.insurance: empty"),
        ],
    )
    def test_refusals(self, change: dict[str, Any], message: str) -> None:
        with pytest.raises(ClaimRefused, match=f"^Claim/c1 refused: {message}"):
            treatment_from_claim(_claim(**change))

    def test_prior_claim_names_the_corrected_one(self) -> None:
        related = [
            {
                "claim": {"reference": "Claim/c0"},
                "relationship": {"coding": [{"code": "prior"}]},
            }
        ]
        assert prior_claim(_claim(related=related)) == "c0"
        assert prior_claim(_claim()) is None


def _two_focal() -> list[dict[str, Any]]:
    return [
        {"sequence": n, "focal": True, "coverage": {"display": "x"}} for n in (1, 2)
    ]


def _item_change(index: int, **changes: Any) -> dict[str, Any]:
    claim = _claim()
    claim["item"][index].update(changes)
    return claim


# Each refusal of issue 6 item 1: the claim, and the one error it must give.
REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "status": (_claim(status="paid"), "Claim.status: not in the fm-status value set"),
    "use": (_claim(use="bill"), "Claim.use: not in the claim-use value set"),
    "empty insurance": (
        _claim(insurance=[]),
        "Claim.insurance: empty; one focal coverage needed",
    ),
    "two focal": (
        _claim(insurance=_two_focal()),
        "Claim.insurance: exactly one must be focal",
    ),
    "money without currency": (
        _claim(total={"value": 265.52}),
        "Claim.total.currency: missing",
    ),
    "currency not ISO 4217": (
        _claim(total={"value": 265.52, "currency": "EUX"}),
        "Claim.total.currency: not an ISO 4217 code",
    ),
    "money without value": (
        _claim(total={"currency": "USD"}),
        "Claim.total.value: missing",
    ),
    "negative total": (
        _claim(total={"value": -1, "currency": "USD"}),
        "Claim.total.value: is negative",
    ),
    "negative unit price": (
        _item_change(2, unitPrice={"value": -3, "currency": "USD"}),
        "Claim.item[2].unitPrice.value: is negative",
    ),
    "created without zone": (
        _claim(created="2024-03-01T10:30:00"),
        "Claim.created: date-time without a time zone",
    ),
    "item period without zone": (
        _item_change(0, servicedPeriod={"start": "2024-03-01T10:00:00"}),
        "Claim.item[0].servicedPeriod.start: date-time without a time zone",
    ),
    "contained reference unresolved": (
        _claim(provider={"reference": "#nowhere"}),
        "Claim.provider: no contained resource has this id",
    ),
    "reference to the wrong type": (
        _claim(provider={"reference": "Patient/p1"}),
        "Claim.provider: must refer to Organization or Practitioner or"
        " PractitionerRole",
    ),
    "item link unresolved": (
        _item_change(0, procedureSequence=[1]),
        "Claim.item[0].procedureSequence[0]: no procedure entry has this sequence",
    ),
    "total below its lines": (
        _claim(total={"value": 100, "currency": "USD"}),
        "Claim.total: is less than the sum of item.net",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_refusal_names_its_field(case: str) -> None:
    """Standalone intake refuses with the message and the field path."""
    claim, expected = REFUSALS[case]
    with pytest.raises(ClaimRefused) as caught:
        treatment_from_claim(claim)
    assert expected in [str(error) for error in caught.value.errors]
    assert expected in str(caught.value)
    assert str(caught.value).startswith("Claim/c1 refused: ")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"patient": {"reference": "urn:uuid:nobody"}},
            "Claim.patient: does not resolve to a Patient",
        ),
        (
            {"diagnosis": [{"sequence": 1, "diagnosisReference": {"reference": "x"}}]},
            "Claim.diagnosis[0].diagnosisReference: does not resolve to a Condition",
        ),
        (
            {"provider": {"reference": "urn:uuid:nowhere"}},
            "Claim.provider: does not resolve to an Organization",
        ),
    ],
)
def test_unresolved_bundle_references_are_refused(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    contents = read_bundle(_write(tmp_path, "b.json", _bundle(claim=change)))
    assert contents.treatments == []
    assert expected in [str(error) for error in contents.refused[0].errors]
