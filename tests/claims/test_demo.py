"""`claims demo`: its own workspace only, bad input reported, the joint score shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from claims.demo import (
    DemoOptions,
    _alone,
    _fresh_workspace,
    _named_insurers,
    example_bundles,
    run_demo,
)
from claims.errors import ConfigError, NotFound
from claims.fhir_intake import read_bundle
from claims.settings import Settings
from claims.store import Claim


def test_the_demo_refuses_a_workspace_that_holds_other_data(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    precious = workspace / "claims.db"
    precious.write_bytes(b"not the demo's")
    with pytest.raises(ConfigError, match="already holds data that is not a demo's"):
        run_demo(DemoOptions(out=tmp_path / "out", workspace=workspace, prefect=False))
    assert precious.read_bytes() == b"not the demo's"


def test_a_folder_without_claims_is_refused_before_the_workspace_is_touched(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "fhir"
    empty.mkdir()
    workspace = tmp_path / "ws"
    with pytest.raises(ConfigError, match="no FHIR Claims found in"):
        run_demo(DemoOptions(fhir=empty, out=tmp_path / "out", workspace=workspace))
    assert not workspace.exists()


def test_a_missing_folder_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="is not a folder of FHIR bundles"):
        run_demo(DemoOptions(fhir=tmp_path / "missing", workspace=tmp_path / "ws"))


def test_the_demo_can_run_twice_in_its_own_workspace(tmp_path: Path) -> None:
    options = DemoOptions(
        out=tmp_path / "out", workspace=tmp_path / "ws", prefect=False
    )
    first = run_demo(options)
    second = run_demo(options)
    assert first["claims"] == second["claims"]
    assert second["duplicates_caught"] == second["duplicates_injected"] == 5


def test_a_second_demo_on_a_workspace_in_use_is_refused_and_touches_nothing(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "ws"
    options = DemoOptions(out=tmp_path / "out", workspace=workspace, prefect=False)
    with _fresh_workspace(options):  # as the first demo holds it while it runs
        keys = workspace / "keys"
        keys.mkdir()
        (keys / "insurer-1.key").write_bytes(b"sealed key of the first demo")
        with pytest.raises(ConfigError, match="is in use by another `claims demo`"):
            run_demo(options)
        assert (keys / "insurer-1.key").read_bytes() == b"sealed key of the first demo"
    assert run_demo(options)["claims"] > 0  # free again once the first has ended


def test_two_demos_with_one_out_folder_are_refused_before_the_work(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    first = DemoOptions(out=out, workspace=tmp_path / "ws1", prefect=False)
    second = DemoOptions(out=out, workspace=tmp_path / "ws2", prefect=False)
    with ExitStack() as held:
        held.enter_context(_alone(out, f"--out {out}", "--out DIR"))  # as `first`
        with pytest.raises(ConfigError, match=r"--out .* is in use by another"):
            run_demo(second)
        assert not (tmp_path / "ws2").exists()  # refused before any work
    assert run_demo(first)["claims"] > 0


# -- the joint risk score in the shipped demo ------------------------------------

SERIAL_BUNDLE = "wren_halloway.json"
"""The shipped serial claimant: claims spread over all three insurers."""


def _live_claims(workspace: Path) -> list[Claim]:
    """Every claim of the demo that reached verification (not rejected)."""
    store = Consortium(Settings.load(workspace)).store
    with Session(store.engine) as session:
        claims = list(session.exec(select(Claim)))
    return [claim for claim in claims if claim.state != "rejected"]


def _by_claimant(workspace: Path) -> dict[str, list[Claim]]:
    """Live claims by the hospital-asserted patient identifier."""
    found: dict[str, list[Claim]] = {}
    for claim in _live_claims(workspace):
        found.setdefault(claim.treatment_data()["patient_ref"], []).append(claim)
    return found


def _serial_mrn() -> str:
    (patient,) = read_bundle(example_bundles() / SERIAL_BUNDLE).patients.values()
    assert patient.mrn is not None
    return patient.mrn


def _status(workspace: Path, *args: str) -> str:
    """`claims status` output, runs of white space (and line wraps) made one."""
    result = CliRunner().invoke(app, ["--workspace", str(workspace), "status", *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def _status_table(workspace: Path, columns: int) -> str:
    """The list of `claims status` as the installed command prints it."""
    script = Path(sys.executable).parent / "claims"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "claims"]
    done = subprocess.run(
        [*command, "--workspace", str(workspace), "status"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_serial_claimant_is_scored_at_all_three_insurers_and_flagged(
    demo_workspace: Path,
) -> None:
    claims = _by_claimant(demo_workspace)[_serial_mrn()]
    assert len(claims) >= 24
    # Each claim went where its FHIR Claim's coverage says: all three insurers.
    assert {claim.insurer_id for claim in claims} == {
        "insurer-1",
        "insurer-2",
        "insurer-3",
    }
    for claim in claims:
        assert claim.risk_score is not None, claim.id
        assert 0 < claim.risk_score < 1
        assert claim.risk_flagged == (claim.risk_score >= 0.5)
    flagged = [claim for claim in claims if claim.risk_flagged]
    assert flagged
    assert all(claim.state == "in_review" for claim in flagged)
    for_risk = [
        claim for claim in flagged if "risk score" in (claim.reason or "").lower()
    ]
    assert for_risk, [claim.reason for claim in flagged]
    # The pattern builds up: her first claims, seen alone, are far from it.
    earliest = min(claims, key=lambda claim: claim.treatment_data()["start"])
    assert earliest.risk_score is not None and earliest.risk_score < 0.01
    assert not earliest.risk_flagged


def test_an_ordinary_single_insurer_claimant_gets_no_score(
    demo_workspace: Path,
) -> None:
    serial = _serial_mrn()
    ordinary = {
        patient: claims
        for patient, claims in _by_claimant(demo_workspace).items()
        if patient != serial and len({claim.insurer_id for claim in claims}) == 1
    }
    assert ordinary, "no claimant of the demo is held by a single insurer"
    for claims in ordinary.values():
        for claim in claims:
            assert claim.risk_score is None
            assert not claim.risk_flagged
    others = [
        claim
        for patient, claims in _by_claimant(demo_workspace).items()
        if patient != serial
        for claim in claims
    ]
    assert not any(claim.risk_flagged for claim in others)


def test_the_summary_counts_scored_and_flagged_claims(demo_workspace: Path) -> None:
    summary = json.loads(
        (demo_workspace.parent / "out" / "summary.json").read_text(encoding="utf-8")
    )
    claims = _live_claims(demo_workspace)
    assert summary["risk_scored"] == sum(1 for c in claims if c.risk_score is not None)
    assert summary["risk_flagged"] == sum(1 for c in claims if c.risk_flagged)
    assert summary["risk_flagged"] >= 1
    assert summary["duplicates_caught"] == summary["duplicates_injected"] == 5
    assert summary["hostile_rejected_as_expected"] == summary["hostile_injected"] == 4
    assert summary["distinct_treatments_flagged"] == 0


def test_claims_status_shows_the_score_or_why_there_is_none(
    demo_workspace: Path,
) -> None:
    by_claimant = _by_claimant(demo_workspace)
    serial = by_claimant.pop(_serial_mrn())
    flagged = next(claim for claim in serial if claim.risk_flagged)
    assert flagged.risk_score is not None
    # A prefix of the id is enough, and still finds the claim's timeline.
    shown = _status(demo_workspace, flagged.id[:8])
    assert (
        f"joint risk score: {flagged.risk_score:.4f}, flagged: at or above"
        " the threshold 0.5" in shown
    )
    assert "scored" in shown
    below = next(claim for claim in serial if not claim.risk_flagged)
    assert below.risk_score is not None
    assert f"{below.risk_score:.4f}, below the threshold 0.5" in _status(
        demo_workspace, below.id
    )
    unscored = next(
        claim
        for claims in by_claimant.values()
        for claim in claims
        if claim.risk_score is None
    )
    assert (
        "joint risk score: not computed: fewer than 3 insurers hold this claimant"
        in _status(demo_workspace, unscored.id)
    )


@pytest.mark.parametrize("columns", [80, 100, 160])
def test_the_list_of_claims_shows_the_score_at_every_width(
    demo_workspace: Path, columns: int
) -> None:
    claims = _live_claims(demo_workspace)
    flagged = next(c for c in claims if c.risk_flagged)
    below = next(c for c in claims if c.risk_score is not None and not c.risk_flagged)
    unscored = next(c for c in claims if c.risk_score is None)
    assert flagged.risk_score is not None and below.risk_score is not None
    table = _status_table(demo_workspace, columns)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= columns
    header = next(line for line in lines if "claim" in line and "reason" in line)
    assert "risk" in header
    assert "! at or above the threshold 0.5, - none" in " ".join(table.split())

    def row(claim: Claim) -> list[str]:
        """The cells of a claim's first line, box rules dropped."""
        line = next(line for line in lines if claim.id[:8] in line)
        return [cell for cell in line.replace("│", " ").split() if cell]

    # Two decimals, cut: a flagged score is marked, a lower one is not.
    assert f"{int(flagged.risk_score * 100) / 100:.2f}!" in row(flagged)
    mark = f"{int(below.risk_score * 100) / 100:.2f}"
    assert mark in row(below) and f"{mark}!" not in row(below)
    assert "-" in row(unscored)
    # The reason keeps its room: it wraps, it is not left out.
    first = next(line for line in lines if flagged.id[:8] in line)
    assert "risk score across" in " ".join(first.split())
    # Whole ids from 140 columns on; below, the prefix `claims status ID` takes.
    assert (flagged.id in table) == (columns >= 140)


def test_claims_status_json_says_false_for_a_claim_never_scored(
    demo_workspace: Path,
) -> None:
    result = CliRunner().invoke(
        app, ["--workspace", str(demo_workspace), "status", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {type(row["risk_flagged"]) for row in rows} == {bool}
    rejected = [row for row in rows if row["state"] == "rejected"]
    assert rejected
    assert all(row["risk_score"] is None for row in rejected)
    assert not any(row["risk_flagged"] for row in rows if row["risk_score"] is None)
    flagged = [row for row in rows if row["risk_flagged"]]
    assert flagged and all(row["risk_score"] >= 0.5 for row in flagged)
    one = _status(demo_workspace, rejected[0]["id"], "--json")
    assert '"risk_flagged": false' in one and '"risk_score": null' in one


def test_the_readme_figures_of_the_serial_claimant(demo_workspace: Path) -> None:
    """README, "Two commands": 24 claims, two of them claimed again at insurer-1.

    If the demo's data or its seed changes, change the README with it.
    """
    serial = _by_claimant(demo_workspace)[_serial_mrn()]
    assert len({claim.treatment_data()["invoice"] for claim in serial}) == 24
    held: dict[str, int] = {}
    for claim in serial:
        held[claim.insurer_id] = held.get(claim.insurer_id, 0) + 1
    assert held == {"insurer-1": 10, "insurer-2": 8, "insurer-3": 8}
    assert sum(claim.duplicate is True for claim in serial) == 4
    summary = json.loads(
        (demo_workspace.parent / "out" / "summary.json").read_text(encoding="utf-8")
    )
    assert summary["risk_scored"] == len(serial) == 26
    flagged = {claim.id for claim in serial if claim.risk_flagged}
    assert summary["risk_flagged"] == len(flagged) == 8
    by_date = sorted(serial, key=lambda claim: claim.treatment_data()["start"])
    assert flagged == {claim.id for claim in by_date[-8:]}


@pytest.mark.parametrize("workspace", [None, "elsewhere-ws"])
def test_the_demo_summary_names_the_next_commands_as_the_readme_installs_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workspace: str | None
) -> None:
    import claims.demo

    def fake_demo(options: DemoOptions) -> dict[str, Any]:
        return {"claims": 1, "settled": 1, "ledger_root": "00"}

    monkeypatch.setattr(claims.demo, "run_demo", fake_demo)
    monkeypatch.delenv("CLAIMS_WORKSPACE", raising=False)
    out = tmp_path / "out"
    args = ["--workspace", workspace] if workspace else []
    result = CliRunner().invoke(app, [*args, "demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    claims = ".venv/bin/claims" + (f" --workspace {workspace}" if workspace else "")
    assert f"next: {claims} status " in shown
    assert f"{claims} ledger verify-receipt {out / 'receipts'}/CLAIM.json" in shown
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    assert ".venv/bin/claims demo" in readme
    assert ".venv/bin/claims status " in readme


def test_claims_status_says_a_rejected_claim_was_never_scored(
    demo_workspace: Path,
) -> None:
    store = Consortium(Settings.load(demo_workspace)).store
    with Session(store.engine) as session:
        rejected = session.exec(select(Claim).where(Claim.state == "rejected")).first()
    assert rejected is not None
    assert "not computed: the claim was rejected before the joint check" in _status(
        demo_workspace, rejected.id
    )


def test_a_claim_goes_to_the_insurer_its_coverage_names_only_when_unambiguous(
    tmp_path: Path,
) -> None:
    def claim(claim_id: str, payer: str, *, focal: bool = True) -> dict[str, Any]:
        coverage = {"sequence": 1, "focal": focal, "coverage": {"display": payer}}
        return {
            "resource": {
                "resourceType": "Claim",
                "id": claim_id,
                "insurance": [coverage],
            }
        }

    bundle = {
        "resourceType": "Bundle",
        "entry": [
            claim("named", "Cedar Ridge Health Cooperative"),
            claim("unknown", "Some Payer Outside The Consortium"),
            claim("not-focal", "Northwind Mutual Health", focal=False),
            claim("twice", "Harbourline Assurance"),
        ],
    }
    again = {
        "resourceType": "Bundle",
        "entry": [claim("twice", "Harbourline Assurance")],
    }
    (tmp_path / "a.json").write_text(json.dumps(bundle), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(again), encoding="utf-8")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    insurers = ["insurer-1", "insurer-2", "insurer-3"]
    assert _named_insurers(tmp_path, insurers) == {"named": "insurer-3"}
