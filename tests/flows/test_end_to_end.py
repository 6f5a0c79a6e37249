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
    expected = (
        fhir_claims + summary["duplicates_injected"] + summary["hostile_injected"]
    )
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
        "claims",
        "settled",
        "denied",
        "in_review",
        "rejected",
        "duplicates_injected",
        "duplicates_caught",
        "turnaround_p50_s",
        "turnaround_p95_s",
        "ledger_size",
        "ledger_root",
    ):
        assert key in written
    assert written["settled"] > written["claims"] // 2
    assert len(list((out / "receipts").glob("*.json"))) == written["settled"]
    assert 0 < written["turnaround_p50_s"] <= written["turnaround_p95_s"]


def test_a_bad_bundle_is_reported_by_name_and_the_others_go_on(tmp_path: Path) -> None:
    fhir = tmp_path / "fhir"
    shutil.copytree(example_bundles(), fhir)
    (fhir / "broken-bundle.json").write_text(
        '{"resourceType": "Bundle", "entry": [', "utf-8"
    )
    summary = run_demo(
        DemoOptions(
            fhir=fhir, out=tmp_path / "out", workspace=tmp_path / "ws", prefect=False
        )
    )
    assert len(summary["bundles_skipped"]) == 1
    assert summary["bundles_skipped"][0].startswith("broken-bundle.json")
    assert summary["claims"] > 0
    assert summary["settled"] > 0


def _verify_cli(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from claims.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_every_receipt_verifies_offline_with_the_trust_file(
    synthea_run: tuple[dict[str, Any], Path, Consortium],
) -> None:
    from ledger.receipt import verify_receipt

    _, out, _ = synthea_run
    trust = json.loads((out / "ledger-keys.json").read_text(encoding="utf-8"))
    assert trust["min_cosignatures"] == 2
    receipts = sorted((out / "receipts").glob("*.json"))
    for path in receipts:
        verify_receipt(
            json.loads(path.read_text(encoding="utf-8")),
            trust["keys"],
            min_cosignatures=trust["min_cosignatures"],
        )
    code, output = _verify_cli(
        "ledger",
        "verify-receipt",
        str(receipts[0]),
        "--keys-file",
        str(out / "ledger-keys.json"),
    )
    assert code == 0, output
    assert "receipt verified" in output


def _mutations(receipt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """One receipt per changed byte of its record, proof and checkpoint."""
    variants: list[tuple[str, dict[str, Any]]] = []
    entry_text = json.dumps(receipt["entry"], sort_keys=True)
    for position in range(0, len(entry_text), 7):
        changed = (
            entry_text[:position]
            + chr(ord(entry_text[position]) ^ 1)
            + entry_text[position + 1 :]
        )
        try:
            entry = json.loads(changed)
        except json.JSONDecodeError:
            continue
        if entry != receipt["entry"]:
            variants.append((f"entry byte {position}", {**receipt, "entry": entry}))
    for i, node in enumerate(receipt["inclusion_proof"]):
        for position in range(0, len(node) - 2, 5):
            flipped = "A" if node[position] != "A" else "B"
            proof = list(receipt["inclusion_proof"])
            proof[i] = node[:position] + flipped + node[position + 1 :]
            variants.append(
                (
                    f"proof node {i} char {position}",
                    {**receipt, "inclusion_proof": proof},
                )
            )
    note = receipt["checkpoint"]
    for position in range(0, len(note), 3):
        flipped = "x" if note[position] != "x" else "y"
        variants.append(
            (
                f"checkpoint char {position}",
                {
                    **receipt,
                    "checkpoint": note[:position] + flipped + note[position + 1 :],
                },
            )
        )
    return variants


def test_a_receipt_fails_after_any_change_to_its_record_proof_or_checkpoint(
    synthea_run: tuple[dict[str, Any], Path, Consortium], tmp_path: Path
) -> None:
    from ledger.errors import LedgerError
    from ledger.receipt import verify_receipt

    _, out, _ = synthea_run
    trust = json.loads((out / "ledger-keys.json").read_text(encoding="utf-8"))
    path = sorted((out / "receipts").glob("*.json"))[0]
    receipt = json.loads(path.read_text(encoding="utf-8"))
    variants = _mutations(receipt)
    assert len(variants) > 100
    for label, variant in variants:
        with pytest.raises(LedgerError):
            verify_receipt(variant, trust["keys"], min_cosignatures=2)
            pytest.fail(f"{label} was not detected")
    # And through the command, with its exit code and reason.
    bad = tmp_path / "tampered.json"
    label, variant = variants[0]
    bad.write_text(json.dumps(variant), encoding="utf-8")
    code, output = _verify_cli(
        "ledger",
        "verify-receipt",
        str(bad),
        "--keys-file",
        str(out / "ledger-keys.json"),
    )
    assert code == 1
    assert "NOT verified" in output


def test_status_shows_a_rejected_claims_reason(
    synthea_run: tuple[dict[str, Any], Path, Consortium],
) -> None:
    _, _, consortium = synthea_run
    with Session(consortium.store.engine) as session:
        rejected = session.exec(select(Claim).where(Claim.state == "rejected")).first()
    assert rejected is not None
    code, output = _verify_cli(
        "--workspace",
        str(consortium.settings.workspace),
        "status",
        rejected.id,
        "--json",
    )
    assert code == 0, output
    data = json.loads(output)
    assert data["state"] == "rejected"
    assert data["reason"] == rejected.reason
    assert [event["state"] for event in data["timeline"]] == ["submitted", "rejected"]
