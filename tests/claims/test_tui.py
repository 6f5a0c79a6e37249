"""`claims track`'s terminal UI: driven with Textual's pilot, and SVG snapshots."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from claims.gateway.errors import GatewayError
from claims.submission import issue_challenge, make_submission, receive
from claims.tui import ClaimsTracker, StoreSource, receipt_status
from flows.process import run_steps
from tests.claims.test_gateway import People, make_people


@pytest.fixture(autouse=True)
def _key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace keys are sealed: give this module's workspaces a passphrase."""
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "people-tests-passphrase")


T0 = "2030-01-02T09:00:00Z"


def _view(claim_id: str, state: str, **extra: Any) -> dict[str, Any]:
    view = {
        "id": claim_id,
        "insurer": "insurer-1",
        "state": state,
        "in_review": state == "in_review",
        "reason": None,
        "currency": "USD",
        "billed": "137.60",
        "payable": None,
        "submitted_at": T0,
        "updated_at": T0,
        "settled_at": None,
        "receipt": state == "settled",
        "timeline": [{"state": "submitted", "at": T0, "reason": None}],
    }
    view.update(extra)
    return view


class FakeSource:
    """Fixed claims, changed by the test between polls."""

    def __init__(self, views: list[dict[str, Any]]) -> None:
        self.views = views
        self.fail: str | None = None

    def claims(self) -> list[dict[str, Any]]:
        if self.fail:
            raise GatewayError(0, "unreachable", self.fail)
        return [dict(v, timeline=None) for v in self.views]

    def claim(self, claim_id: str) -> dict[str, Any]:
        return copy.deepcopy(next(v for v in self.views if v["id"] == claim_id))

    def receipt(self, claim_id: str) -> dict[str, Any] | None:
        return None


def _fixed_claims() -> list[dict[str, Any]]:
    review = _view(
        "7d0c2b9e-0000-4000-8000-000000000002",
        "in_review",
        reason="a person at the insurer is reviewing this claim",
        payable="90.00",
    )
    review["timeline"] += [
        {"state": "verified", "at": "2030-01-02T09:00:03Z", "reason": None},
        {"state": "in_review", "at": "2030-01-02T09:00:04Z", "reason": None},
    ]
    return [
        _view("3f6a1c20-0000-4000-8000-000000000001", "submitted"),
        review,
        _view(
            "b91e44aa-0000-4000-8000-000000000003",
            "rejected",
            reason="revoked: the credential was revoked by its issuer",
        ),
    ]


def _cells(app: ClaimsTracker, column: str) -> list[str]:
    table = app.query_one(DataTable)
    return [str(table.get_cell(row, column)) for row in table.rows]


# -- snapshots -----------------------------------------------------------------


def test_snapshot_of_three_claims(snap_compare: Any) -> None:
    app = ClaimsTracker(FakeSource(_fixed_claims()), interval=0, title="test")
    assert snap_compare(app, terminal_size=(110, 24))


def test_snapshot_of_the_in_review_claim_selected(snap_compare: Any) -> None:
    app = ClaimsTracker(FakeSource(_fixed_claims()), interval=0, title="test")
    assert snap_compare(app, press=["j"], terminal_size=(110, 24))


# -- pilot ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_keys_move_the_selection_and_show_its_timeline() -> None:
    app = ClaimsTracker(FakeSource(_fixed_claims()), interval=0)
    async with app.run_test() as pilot:
        detail = app.query_one("#detail", Static)
        assert "(submitted)" in str(detail.render())
        await pilot.press("j")
        text = str(detail.render())
        assert "(in_review)" in text
        assert "2030-01-02 09:00:04  in_review" in text
        assert "reviewing" in text
        await pilot.press("k")
        assert "(submitted)" in str(detail.render())
        assert _cells(app, "review") == ["-", "in review", "-"]
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.anyio
async def test_text_that_looks_like_markup_is_shown_as_it_is() -> None:
    """A reason or insurer id with "[/]" in it must not be read as markup."""
    reason = "[/] refused [bold]twice[/bold]"
    views = [_view("c1", "rejected", reason=reason, insurer="[b]ins[/b]")]
    app = ClaimsTracker(FakeSource(views), interval=0)
    async with app.run_test() as pilot:
        assert f"reason: {reason}" in str(app.query_one("#detail", Static).render())
        assert _cells(app, "insurer") == ["[b]ins[/b]"]
        await pilot.press("q")
    assert app.return_code == 0


@pytest.mark.anyio
async def test_a_source_that_fails_is_shown_not_raised() -> None:
    source = FakeSource(_fixed_claims())
    app = ClaimsTracker(source, interval=0)
    async with app.run_test() as pilot:
        source.fail = "the gateway at http://127.0.0.1:1 did not answer"
        await pilot.press("r")
        status = str(app.query_one("#status", Static).render())
        assert "did not answer" in status
        assert len(_cells(app, "state")) == 3


@pytest.mark.anyio
async def test_a_claim_moving_to_settled_shows_without_a_restart(
    tmp_path: Path,
) -> None:
    people: People = make_people(tmp_path / "ws")
    consortium = people.consortium
    challenge = issue_challenge(consortium, "insurer-1")
    claim = receive(
        consortium,
        "insurer-1",
        make_submission(
            people.credentials[people.alice.did][0],
            people.alice,
            challenge=challenge["challenge"],
            domain=challenge["domain"],
        ),
    )
    app = ClaimsTracker(
        StoreSource(consortium, people.alice.did),
        trust=consortium.trust_file(),
        interval=0.05,
    )
    async with app.run_test() as pilot:
        assert _cells(app, "state") == ["submitted"]
        run_steps(consortium)
        for _ in range(200):  # a bounded wait for the next polls
            await pilot.pause(0.05)
            if _cells(app, "state") == ["settled"]:
                break
        assert _cells(app, "state") == ["settled"]
        assert _cells(app, "receipt") == ["verified"]
        assert _cells(app, "claim") == [claim.id[:8]]
        detail = str(app.query_one("#detail", Static).render())
        assert "settled" in detail and "receipt: verified" in detail


def test_a_receipt_checked_against_the_wrong_keys_is_not_verified(
    tmp_path: Path,
) -> None:
    people = make_people(tmp_path / "ws")
    consortium = people.consortium
    challenge = issue_challenge(consortium, "insurer-1")
    claim = receive(
        consortium,
        "insurer-1",
        make_submission(
            people.credentials[people.alice.did][0],
            people.alice,
            challenge=challenge["challenge"],
            domain=challenge["domain"],
        ),
    )
    run_steps(consortium)
    receipt = StoreSource(consortium, people.alice.did).receipt(claim.id)
    trust = consortium.trust_file()
    assert receipt_status(receipt, trust) == "verified"
    assert receipt_status(receipt, None) == "not checked: no ledger keys"
    assert receipt_status(None, trust) == "no receipt yet"
    alone = {"keys": trust["keys"][:1], "min_cosignatures": 2}
    assert receipt_status(receipt, alone) == "not verified: cosignatures"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
