"""`claims adjudicate`, `claims review ...` and `claims metrics` on the command line."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.claimresponse import ClaimResponse
from typer.testing import CliRunner

from claims.adjudication import AdjudicationError
from claims.cli.main import app
from claims.demo import DemoOptions, run_demo
from claims.review import NotInReview

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "claims" / "examples"


def _hl7(shared_dir: Path, name: str) -> dict[str, Any]:
    path = shared_dir / "data" / "hl7_r4_examples" / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(tmp_path: Path, data: Any, name: str = "claim.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _totals(response: dict[str, Any]) -> dict[str, Decimal]:
    return {
        t["category"]["coding"][0]["code"]: Decimal(str(t["amount"]["value"]))
        for t in response["total"]
    }


class TestAdjudicate:
    def test_hl7_professional_example_under_the_default_policy(
        self, shared_dir: Path, tmp_path: Path
    ) -> None:
        """HL7 FHIR R4 v4.0.1 example claim-example-professional.json
        (fhir-crucible/fhir_models, lib/fhir_models/examples/json/).

        Default plan NWM-SILVER (claims/examples/insurer-1.toml): one 75.00
        exam line; professional copay 20.00, then 55.00 to the 250.00
        deductible: nothing payable, approved.
        """
        path = (
            shared_dir / "data" / "hl7_r4_examples" / "claim-example-professional.json"
        )
        workspace = tmp_path / "ws"
        result = runner.invoke(
            app, ["-w", str(workspace), "adjudicate", str(path), "--json"]
        )
        assert result.exit_code == 0, result.output
        response = json.loads(result.stdout)
        ClaimResponse.model_validate(response)
        assert response["insurer"] == {"display": "Northwind Mutual Health"}
        assert _totals(response) == {
            "submitted": Decimal("75"),
            "eligible": Decimal("75"),
            "copay": Decimal("20"),
            "deductible": Decimal("55"),
            "benefit": Decimal("0"),
        }
        assert response["disposition"] == "approved"
        # A dry run stores nothing: not even a workspace is made.
        assert not workspace.exists()

    def test_table_by_default(self, shared_dir: Path) -> None:
        path = (
            shared_dir / "data" / "hl7_r4_examples" / "claim-example-professional.json"
        )
        result = runner.invoke(app, ["adjudicate", str(path)])
        assert result.exit_code == 0, result.output
        assert "ClaimResponse for Claim/860150 under NWM-SILVER" in result.stdout
        assert "line 1: Copay; Applied to the deductible" in result.stdout
        assert "approved: payable 0.00 USD of 75.00 submitted" in result.stdout

    def test_policy_file_and_bundle_of_one(
        self, shared_dir: Path, tmp_path: Path
    ) -> None:
        """The same HL7 example inside a collection Bundle, under insurer-2."""
        claim = _hl7(shared_dir, "claim-example-professional.json")
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": "urn:uuid:1", "resource": claim}],
        }
        result = runner.invoke(
            app,
            [
                "adjudicate",
                str(_write(tmp_path, bundle)),
                "--policy",
                str(EXAMPLES / "insurer-2.toml"),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        response = json.loads(result.stdout)
        assert response["insurer"]["display"] != "Northwind Mutual Health"
        assert _totals(response)["submitted"] == Decimal("75")

    def test_refusal_lists_field_paths_and_exits_1(
        self, shared_dir: Path, tmp_path: Path
    ) -> None:
        claim = _hl7(shared_dir, "claim-example-professional.json")
        claim["item"][0]["net"]["currency"] = "usd"
        claim["status"] = "paid"
        path = _write(tmp_path, claim)

        result = runner.invoke(app, ["adjudicate", str(path), "--json"])
        assert result.exit_code == 1
        refusal = json.loads(result.stdout)
        assert refusal["refused"] is True
        assert {(e["path"], e["message"]) for e in refusal["errors"]} >= {
            ("Claim.status", "not in the fm-status value set"),
            ("Claim.item[0].net.currency", "not an ISO 4217 code"),
        }

        result = runner.invoke(app, ["adjudicate", str(path)])
        assert result.exit_code == 1
        assert "refused: Claim/860150" in result.stderr
        assert "Claim.item[0].net.currency: not an ISO 4217 code" in result.stderr

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"resourceType": "Patient"}, "is a 'Patient', not a Claim or a Bundle"),
            (
                {"resourceType": "Bundle", "type": "collection", "entry": []},
                "the Bundle holds 0 Claims",
            ),
            ([1, 2], "the input is not a JSON object"),
        ],
    )
    def test_not_one_claim(self, tmp_path: Path, data: Any, message: str) -> None:
        result = runner.invoke(app, ["adjudicate", str(_write(tmp_path, data))])
        assert result.exit_code == 1
        assert isinstance(result.exception, AdjudicationError)
        assert message in str(result.exception)

    def test_text_that_is_not_json(self, tmp_path: Path) -> None:
        path = tmp_path / "claim.json"
        path.write_text("{not json", encoding="utf-8")
        result = runner.invoke(app, ["adjudicate", str(path)])
        assert isinstance(result.exception, AdjudicationError)
        assert "the input is not valid JSON" in str(result.exception)


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-payer-demo")
    run_demo(DemoOptions(out=root / "out", workspace=root / "ws", prefect=False))
    return root / "ws"


@pytest.fixture
def workspace(demo_workspace: Path, tmp_path: Path) -> str:
    copy = tmp_path / "ws"
    shutil.copytree(demo_workspace, copy)
    return str(copy)


def _json(args: list[str]) -> Any:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestReviewCommands:
    def test_list_show_approve_deny(
        self, workspace: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("USER", "night.shift")
        items = _json(["-w", workspace, "review", "list", "--json"])
        assert len(items) >= 2
        first, second = items[0]["claim_id"], items[1]["claim_id"]

        shown = _json(["-w", workspace, "review", "show", first, "--json"])
        assert shown["claim"]["state"] == "in_review"

        approved = _json(
            ["-w", workspace, "review", "approve", first, "--note", "ok", "--json"]
        )
        assert approved["reviewer"] == "night.shift"
        assert approved["ledger_index"] is not None
        denied = _json(
            [
                "-w",
                workspace,
                "review",
                "deny",
                second,
                "--reason",
                "billed twice",
                "--reviewer",
                "a.smith",
                "--json",
            ]
        )
        assert (denied["decision"], denied["reviewer"], denied["note"]) == (
            "denied",
            "a.smith",
            "billed twice",
        )
        left = _json(["-w", workspace, "review", "list", "--json"])
        assert {first, second}.isdisjoint(item["claim_id"] for item in left)

        result = runner.invoke(app, ["-w", workspace, "review", "approve", second])
        assert isinstance(result.exception, NotInReview)

    def test_tables(self, workspace: str) -> None:
        result = runner.invoke(app, ["-w", workspace, "review", "list"])
        assert result.exit_code == 0
        assert "claims in review" in result.stdout
        result = runner.invoke(app, ["-w", workspace, "metrics"])
        assert result.exit_code == 0
        assert "straight-through rate" in result.stdout

    def test_list_and_show_give_the_risk_score_as_numbers(self, workspace: str) -> None:
        items = _json(["-w", workspace, "review", "list", "--json"])
        flagged = [item for item in items if item["risk_flagged"] is True]
        assert flagged
        for item in items:
            assert item["risk_threshold"] == 0.5
            assert isinstance(item["risk_flagged"], bool)
            if item["risk_flagged"]:
                assert isinstance(item["risk_score"], float)
                assert item["risk_score"] >= 0.5
            assert item["risk_score"] is None or isinstance(item["risk_score"], float)
        assert any(item["risk_score"] is None for item in items)
        first = flagged[0]
        claim = _json(["-w", workspace, "review", "show", first["claim_id"], "--json"])[
            "claim"
        ]
        assert claim["risk_score"] == first["risk_score"]
        assert (claim["risk_flagged"], claim["risk_threshold"]) == (True, 0.5)

    @pytest.mark.parametrize("columns", [80, 160])
    def test_the_list_table_shows_the_risk_and_the_threshold(
        self, workspace: str, monkeypatch: pytest.MonkeyPatch, columns: int
    ) -> None:
        from claims.cli import _common

        monkeypatch.setattr(_common.console, "_width", columns)
        items = _json(["-w", workspace, "review", "list", "--json"])
        flagged = next(item for item in items if item["risk_flagged"])
        unscored = next(item for item in items if item["risk_score"] is None)
        result = runner.invoke(app, ["-w", workspace, "review", "list"])
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= columns
        header = next(line for line in lines if "claim" in line and "why" in line)
        assert "risk" in header.split()
        caption = " ".join(result.stdout.split())
        assert "! at or above the threshold 0.5, - none" in caption

        def cells(item: dict[str, Any]) -> list[str]:
            line = next(line for line in lines if item["claim_id"][:8] in line)
            return line.replace("│", " ").split()

        mark = f"{int(flagged['risk_score'] * 100) / 100:.2f}!"
        assert mark in cells(flagged)
        assert "-" in cells(unscored)
        # The reason wraps; it is not cut off.
        why = " ".join(" ".join(lines).replace("│", " ").split())
        assert "above the threshold" in why

    def test_show_says_the_score_and_the_threshold(self, workspace: str) -> None:
        items = _json(["-w", workspace, "review", "list", "--json"])
        flagged = next(item for item in items if item["risk_flagged"])
        result = runner.invoke(
            app, ["-w", workspace, "review", "show", flagged["claim_id"][:8]]
        )
        assert result.exit_code == 0, result.output
        shown = " ".join(result.stdout.split())
        assert (
            f"joint risk score: {flagged['risk_score']:.4f}, flagged: at or above"
            " the threshold 0.5" in shown
        )
        assert "in_review" in shown  # the timeline, found by the id's prefix
        unscored = next(item for item in items if item["risk_score"] is None)
        result = runner.invoke(
            app, ["-w", workspace, "review", "show", unscored["claim_id"]]
        )
        assert "joint risk score: not computed: " in " ".join(result.stdout.split())

    def test_deny_needs_a_reason_option(self, workspace: str) -> None:
        result = runner.invoke(app, ["-w", workspace, "review", "deny", "x"])
        assert result.exit_code == 2

    def test_metrics_json(self, workspace: str) -> None:
        data = _json(["-w", workspace, "metrics", "--json"])
        overall = data["overall"]
        assert overall["claims"] == sum(m["claims"] for m in data["insurers"].values())
        assert set(overall) >= {
            "turnaround_p50_s",
            "turnaround_p95_s",
            "straight_through_rate",
            "denial_rate",
            "review_backlog_oldest_s",
            "review_backlog_median_s",
        }

    def test_no_store(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["-w", str(tmp_path / "none"), "metrics"])
        assert result.exit_code == 1
        assert "no store in" in str(result.exception)


@pytest.mark.parametrize(
    "command",
    [
        ["adjudicate"],
        ["metrics"],
        ["review", "list"],
        ["review", "show"],
        ["review", "approve"],
        ["review", "deny"],
    ],
)
def test_help_has_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: claims " in result.stdout
