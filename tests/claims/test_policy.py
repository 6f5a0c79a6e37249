"""Policies: the shipped examples load; bad fields are named on load."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from claims.errors import ConfigError, NotFound
from claims.policy import Policy, PolicyError

EXAMPLES = Path(__file__).resolve().parents[2] / "claims" / "examples"

BASE: dict[str, Any] = {
    "insurer": "Example Insurer",
    "plan_id": "EX-1",
    "currency": "USD",
    "effective": {"start": date(2020, 1, 1), "end": date(2030, 12, 31)},
    "benefits": {
        "waiting_period_days": 30,
        "covered_claim_types": ["institutional", "professional", "pharmacy"],
        "annual_deductible": "100",
        "coinsurance": "0.2",
        "review_threshold": "1500",
        "copay": {"professional": "20"},
    },
    "codes": {"excluded": ["http://snomed.info/sct|1"], "preauthorisation": []},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


@pytest.mark.parametrize("number", [1, 2, 3])
def test_example_policies_load_and_cover_synthea(number: int) -> None:
    policy = Policy.from_toml(EXAMPLES / f"insurer-{number}.toml")
    assert {"institutional", "professional", "pharmacy"} <= policy.covered_claim_types
    assert policy.covers_date(date(1939, 6, 1)) and policy.covers_date(date(2030, 1, 1))
    assert policy.currency == "USD"
    assert 0 <= policy.coinsurance <= 1


def test_example_policies_differ() -> None:
    policies = [Policy.from_toml(EXAMPLES / f"insurer-{n}.toml") for n in (1, 2, 3)]
    assert len({p.plan_id for p in policies}) == 3
    assert len({p.annual_deductible for p in policies}) == 3
    assert len({p.coinsurance for p in policies}) == 3


def test_from_dict_reads_amounts_exactly() -> None:
    policy = Policy.from_dict(_with("benefits.coinsurance", 0.2))
    assert policy.coinsurance == Decimal("0.2")
    assert policy.copay == {"professional": Decimal("20")}
    assert policy.per_service_maximum is None and policy.annual_limit is None
    assert policy.excluded_codes == frozenset({"http://snomed.info/sct|1"})


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("benefits.coinsurance", "1.5", r"benefits\.coinsurance: must be between 0"),
        ("insurer", _DELETE, r"insurer: missing"),
        ("currency", "usd", r"currency: must be an ISO 4217 code"),
        ("effective.end", date(2019, 1, 1), r"effective\.end: is before"),
        ("effective.start", "someday", r"effective\.start: missing or not a date"),
        ("benefits.covered_claim_types", ["dental"], r"unknown claim type\(s\) dental"),
        ("benefits.annual_deductible", "-5", r"annual_deductible: is negative"),
        ("benefits.annual_limit", "1e300", r"annual_limit: is more than the largest"),
        (
            "benefits.waiting_period_days",
            99999999999999999,
            r"waiting_period_days: must be a whole number of days, 0 to 36500",
        ),
        ("benefits.annual_limit", "NaN", r"annual_limit: is not a finite number"),
        (
            "benefits.annual_deductible",
            "250.005",
            r"annual_deductible: has a fraction of a cent",
        ),
        ("benefits.annual_deductible", "lots", r"annual_deductible: is not a number"),
        ("benefits.review_threshold", _DELETE, r"review_threshold: missing"),
        ("benefits.waiting_period_days", -1, r"waiting_period_days: must be a whole"),
        ("benefits.copay", {"dental": "5"}, r"benefits\.copay\.dental: unknown"),
        ("codes.excluded", ["1234"], r"codes\.excluded\[0\]: must be written"),
    ],
)
def test_bad_field_is_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(_with(path, value))


def test_every_problem_is_reported_at_once() -> None:
    data = _with("currency", "dollars")
    data["benefits"]["coinsurance"] = "2"
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict(data, source="two.toml")
    assert len(caught.value.problems) == 2
    assert str(caught.value).startswith("policy two.toml is not valid: ")
    assert isinstance(caught.value, ConfigError) and caught.value.remedy


def test_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("insurer = \n")
    with pytest.raises(
        PolicyError, match=r"policy .*/bad\.toml is not valid: not valid"
    ):
        Policy.from_toml(path)


def test_missing_file_is_refused_naming_its_whole_path(tmp_path: Path) -> None:
    absent = tmp_path / "folder" / "absent.toml"
    with pytest.raises(NotFound, match=f"no policy file {absent}"):
        Policy.from_toml(absent)
    with pytest.raises(ConfigError, match=f"policy {tmp_path} cannot be read"):
        Policy.from_toml(tmp_path)  # a folder
