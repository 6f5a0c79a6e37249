"""Claim ids as users type them: whole, as 8+ character prefixes, or nonsense.

Regressions: a 100,000-character id reached SQLite ("LIKE pattern too
complex") and was reported as a damaged store; `_` and `%` in a prefix were
wildcards (`claims status ________` matched every claim); and `claims ledger
prove` took the 8-character prefixes `claims status` prints for leaf indexes
when they were all digits.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from claims.errors import NotFound
from claims.settings import Settings
from claims.store import AmbiguousClaimId, Claim, Store, utcnow

DIGITS = "12345678-0000-4000-8000-000000000001"
"""A claim id whose first 8 characters are digits; its settlement is on the ledger."""
TWIN_A = "abcdef01-aaaa-4000-8000-000000000002"
TWIN_B = "abcdef01-bbbb-4000-8000-000000000003"
LITERAL = "underXsc-0000-4000-8000-000000000004"
SETTLEMENT_INDEX = 3

runner = CliRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three insurers, four claims, a ledger of 3 events and one settlement."""
    folder = tmp_path_factory.mktemp("claim-ids") / "ws"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAIMS_KEY_PASSPHRASE", "claim-id-tests-only")
        consortium = Consortium(Settings.load(folder))
        for name in ("ins-a", "ins-b", "ins-c"):
            consortium.add_member(name, "insurer", name.upper())
        with consortium.store.session() as session:
            for minute, claim_id in enumerate((DIGITS, TWIN_A, TWIN_B, LITERAL)):
                at = utcnow() + timedelta(minutes=minute)
                session.add(
                    Claim(
                        id=claim_id,
                        insurer_id="ins-a",
                        state="submitted",
                        claimant_did="did:example:claimant",
                        challenge=f"nonce-{claim_id}",
                        submission="{}",
                        submission_hash="0" * 64,
                        submitted_at=at,
                        updated_at=at,
                    )
                )
        events = [{"type": "test.event", "v": 1, "n": n} for n in range(3)]
        consortium.ledger.append(events, [f"event-{n}" for n in range(3)])
        consortium.ledger.append(
            [{"type": "settlement", "v": 1, "claim_id": DIGITS}],
            [f"settlement:settlement-{DIGITS}"],
        )
        consortium.finalise_ledger()
        consortium.store.engine.dispose()
    return folder


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "claim-id-tests-only")


def _get(workspace: Path, claim_id: str) -> Claim:
    store = Store(Settings.load(workspace).database_url)
    try:
        with Session(store.engine) as session:
            return store.get_claim(session, claim_id)
    finally:
        store.engine.dispose()


# -- Store.get_claim ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"), [(DIGITS, DIGITS), ("12345678", DIGITS), (TWIN_A, TWIN_A)]
)
def test_a_whole_id_or_a_unique_prefix_finds_the_claim(
    workspace: Path, given: str, expected: str
) -> None:
    assert _get(workspace, given).id == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "x" * 100_000,
            "not a claim id: it has 100000 characters, and a claim id has at most 64",
        ),
        (
            "abc",
            "no claim has the id 'abc', and a claim id prefix needs at least 8"
            " characters",
        ),
        ("________", "no claim id is or starts with '________'"),
        ("%%%%%%%%", "no claim id is or starts with '%%%%%%%%'"),
        ("under_sc", "no claim id is or starts with 'under_sc'"),
    ],
    ids=["100,000 characters", "short prefix", "underscores", "percents", "_ in id"],
)
def test_ids_no_claim_has_are_refused_with_the_reason(
    workspace: Path, given: str, message: str
) -> None:
    with pytest.raises(NotFound) as caught:
        _get(workspace, given)
    assert str(caught.value) == message
    assert not isinstance(caught.value, AmbiguousClaimId)


def test_a_prefix_of_two_ids_is_ambiguous(workspace: Path) -> None:
    with pytest.raises(
        AmbiguousClaimId, match="^more than one claim id starts with 'abcdef01'$"
    ):
        _get(workspace, "abcdef01")


def test_the_status_command_refuses_a_huge_id_as_not_a_claim_id(
    workspace: Path,
) -> None:
    result = runner.invoke(app, ["-w", str(workspace), "status", "y" * 100_000])
    assert isinstance(result.exception, NotFound)
    assert str(result.exception).startswith("not a claim id: it has 100000")


# -- claims ledger prove -----------------------------------------------------------


def _prove(workspace: Path, entry_id: str) -> int:
    result = runner.invoke(app, ["-w", str(workspace), "ledger", "prove", entry_id])
    assert result.exit_code == 0, (result.output, result.exception)
    index: int = json.loads(result.stdout)["leaf_index"]
    return index


@pytest.mark.parametrize("given", [DIGITS, "12345678", "12345678-0000"])
def test_prove_takes_the_prefixes_status_prints_digits_or_not(
    workspace: Path, given: str
) -> None:
    assert _prove(workspace, given) == SETTLEMENT_INDEX


def test_prove_takes_digits_no_claim_id_starts_with_as_a_leaf_index(
    workspace: Path,
) -> None:
    assert _prove(workspace, "1") == 1
    assert _prove(workspace, "event-2") == 2


@pytest.mark.parametrize(
    ("given", "kind", "message"),
    [
        (
            TWIN_A,
            NotFound,
            f"claim {TWIN_A} has no settlement on the ledger (it is submitted)",
        ),
        ("abcdef01", AmbiguousClaimId, "more than one claim id starts with"),
        (
            "9" * 100_000,
            NotFound,
            f"entry {'9' * 40}... (100000 characters) is beyond the ledger (size 4)",
        ),
        (
            "z" * 100_000,
            NotFound,
            f"no ledger entry with key '{'z' * 40}... (100000 characters)' and no"
            " claim whose id is or starts with it",
        ),
    ],
    ids=["unsettled claim", "ambiguous prefix", "huge number", "huge id"],
)
def test_prove_refuses_with_the_reason(
    workspace: Path, given: str, kind: type[Exception], message: str
) -> None:
    result = runner.invoke(app, ["-w", str(workspace), "ledger", "prove", given])
    assert isinstance(result.exception, kind), result.output
    assert str(result.exception).startswith(message)


def test_prove_help_says_how_an_index_and_a_claim_id_are_told_apart() -> None:
    result = runner.invoke(app, ["ledger", "prove", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.split())
    assert "an all-digit argument is a leaf index only when no claim id is or" in text
