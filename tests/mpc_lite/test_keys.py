"""Tests for `mpc_lite.keys`: canonical encodings of treatments and claimants."""

from __future__ import annotations

import pytest

from mpc_lite.errors import InvalidInput
from mpc_lite.keys import claimant_key, treatment_key

DID = "did:key:z6MkhospitalA"


def test_treatment_key_ignores_code_order_and_repeats() -> None:
    first = treatment_key(DID, "INV-1", "2024-03-01", ["cpt|99213", "icd|J10"])
    second = treatment_key(
        DID, "INV-1", "2024-03-01", ["icd|J10", "cpt|99213", "icd|J10"]
    )
    assert first == second


def test_treatment_key_normalises_to_nfc() -> None:
    composed = treatment_key(DID, "Caf\u00e9-7", "2024-03-01", [])
    decomposed = treatment_key(DID, "Cafe\u0301-7", "2024-03-01", [])
    assert composed == decomposed


def test_treatment_key_keeps_field_boundaries() -> None:
    assert treatment_key("ab", "c", "2024-03-01", []) != treatment_key(
        "a", "bc", "2024-03-01", []
    )
    assert treatment_key(DID, "1", "2024-03-01", ["a|b", "c"]) != treatment_key(
        DID, "1", "2024-03-01", ["a|bc"]
    )


def test_treatment_key_differs_per_field() -> None:
    base = treatment_key(DID, "INV-1", "2024-03-01", ["cpt|1"])
    assert base != treatment_key(DID, "INV-2", "2024-03-01", ["cpt|1"])
    assert base != treatment_key(DID, "INV-1", "2024-03-02", ["cpt|1"])
    assert base != treatment_key(DID, "INV-1", "2024-03-01", ["cpt|2"])
    assert base != treatment_key(DID + "x", "INV-1", "2024-03-01", ["cpt|1"])


def test_treatment_and_claimant_keys_never_collide() -> None:
    assert claimant_key("MRN-1").startswith(b"mpc_lite/claimant/v1")
    assert treatment_key(DID, "1", "2024-03-01", []).startswith(
        b"mpc_lite/treatment/v1"
    )


@pytest.mark.parametrize(
    "bad", ["2024-3-01", "20240301", "2024-02-30", "2024-03-01T10"]
)
def test_treatment_key_refuses_a_malformed_date_without_echoing_it(bad: str) -> None:
    with pytest.raises(InvalidInput, match="service_date") as info:
        treatment_key(DID, "INV-1", bad, [])
    assert bad not in str(info.value)


def test_claimant_key_refuses_empty_and_is_stable() -> None:
    with pytest.raises(InvalidInput, match="patient_identifier must not be empty"):
        claimant_key("")
    assert claimant_key("MRN-\u00e9") == claimant_key("MRN-e\u0301")


def test_treatment_key_refuses_a_bare_string_of_codes() -> None:
    with pytest.raises(InvalidInput, match="procedure_codes"):
        treatment_key(DID, "1", "2024-03-01", "cpt|1")  # type: ignore[arg-type]
