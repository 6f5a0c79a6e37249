"""The whole path of a claim, on the shared Synthea data and on our examples.

The Synthea run goes through the real Prefect flow once (module fixture); the
checks below read its summary, its store and its receipts.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from claims.consortium import Consortium
from claims.demo import DemoOptions, example_bundles, run_demo
from claims.settings import Settings
from claims.store import Claim

FINAL = {"settled", "denied", "in_review", "rejected"}


def _count_fhir_claims(folder: Path) -> int:
    total = 0
    for path in folder.glob("*.json"):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        total += sum(
            1
            for entry in bundle.get("entry", [])
            if entry.get("resource", {}).get("resourceType") == "Claim"
        )
    return total


@pytest.fixture(scope="module")
def synthea_run(
    tmp_path_factory: pytest.TempPathFactory, shared_dir: Path
) -> tuple[dict[str, Any], Path, Consortium]:
    base = tmp_path_factory.mktemp("synthea")
    options = DemoOptions(
        fhir=shared_dir / "data" / "synthea_r4",
        out=base / "out",
        workspace=base / "ws",
        prefect=True,
    )
    summary = run_demo(options)
    return summary, options.out, Consortium(Settings.load(base / "ws"))


def test_every_synthea_claim_becomes_a_credential_and_a_claim(
    synthea_run: tuple[dict[str, Any], Path, Consortium], shared_dir: Path
) -> None:
    summary, _, _ = synthea_run
    fhir_claims = _count_fhir_claims(shared_dir / "data" / "synthea_r4")
    assert fhir_claims == 473
    expected = fhir_claims + summary["duplicates_injected"] + summary["hostile_injected"]
    assert summary["claims"] == expected


def test_every_claim_ends_in_a_final_state_and_rejections_say_why(
    synthea_run: tuple[dict[str, Any], Path, Consortium],
) -> None:
    _, _, consortium = synthea_run
    with Session(consortium.store.engine) as session:
        claims = list(session.exec(select(Claim)))
    assert {claim.state for claim in claims} <= FINAL
    for claim in claims:
        if claim.state in ("rejected", "in_review", "denied"):
            assert claim.reason, f"claim {claim.id} is {claim.state} without a reason"


def test_all_injected_duplicates_are_caught_and_nothing_else_is_flagged(
    synthea_run: tuple[dict[str, Any], Path, Consortium],
) -> None:
    summary, _, _ = synthea_run
    assert summary["duplicates_injected"] == 5
    assert summary["duplicates_caught"] == 5
    assert summary["distinct_treatments_flagged"] == 0


def test_hostile_submissions_are_rejected_for_their_own_reason(
    synthea_run: tuple[dict[str, Any], Path, Consortium],
) -> None:
    summary, _, _ = synthea_run
    assert summary["hostile_injected"] == 4
    assert summary["hostile_rejected_as_expected"] == 4
    assert summary["rejected"] == 4


def test_most_claims_settle_and_the_summary_has_every_field(
    synthea_run: tuple[dict[str, Any], Path, Consortium],
) -> None:
    summary, out, _ = synthea_run
    written = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for key in (
        "claims", "settled", "denied", "in_review", "rejected",
        "duplicates_injected", "duplicates_caught", "turnaround_p50_s",
        "turnaround_p95_s", "ledger_size", "ledger_root",
    ):
        assert key in written
    assert written["settled"] > written["claims"] // 2
    assert len(list((out / "receipts").glob("*.json"))) == written["settled"]
    assert 0 < written["turnaround_p50_s"] <= written["turnaround_p95_s"]


def test_a_bad_bundle_is_reported_by_name_and_the_others_go_on(tmp_path: Path) -> None:
    fhir = tmp_path / "fhir"
    shutil.copytree(example_bundles(), fhir)
    (fhir / "broken-bundle.json").write_text('{"resourceType": "Bundle", "entry": [', "utf-8")
    summary = run_demo(
        DemoOptions(fhir=fhir, out=tmp_path / "out", workspace=tmp_path / "ws", prefect=False)
    )
    assert len(summary["bundles_skipped"]) == 1
    assert summary["bundles_skipped"][0].startswith("broken-bundle.json")
    assert summary["claims"] > 0
    assert summary["settled"] > 0
