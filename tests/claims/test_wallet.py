"""The wallet keeps only credentials whose issuer's proof holds, and never
swaps a held credential for another copy (a regression found by a new user:
`claims wallet add` once replaced a good credential with a tampered one)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from claims.wallet import Wallet, WalletError
from credentials.issuer import issue_credential
from credentials.key_file import KdfLimits
from credentials.keys import Ed25519Key

FAST = KdfLimits(1, 8192)


def _issued(holder_did: str) -> dict:
    return issue_credential(
        Ed25519Key.generate(),
        credential_id="urn:uuid:0b0e9c52-3f6f-4d0c-9d55-1b4f5c3a7e11",
        subject={
            "id": holder_did,
            "treatment": {"invoice": "inv-1", "amount": "277.32"},
        },
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=None,
        status=None,
    )


def test_a_tampered_copy_is_refused_and_the_held_one_is_kept(tmp_path: Path) -> None:
    wallet = Wallet.create(tmp_path, "alice", "pw", limits=FAST)
    good = _issued(wallet.did)
    credential_id = wallet.add(json.dumps(good).encode())
    tampered = copy.deepcopy(good)
    tampered["credentialSubject"]["treatment"]["amount"] = "277.33"
    with pytest.raises(WalletError, match="does not verify"):
        wallet.add(json.dumps(tampered).encode())
    assert wallet.get(credential_id) == good


def test_adding_the_same_credential_twice_changes_nothing(tmp_path: Path) -> None:
    wallet = Wallet.create(tmp_path, "alice", "pw", limits=FAST)
    good = _issued(wallet.did)
    first = wallet.add(json.dumps(good).encode())
    assert wallet.add(json.dumps(good, indent=2).encode()) == first
    assert len(wallet.list()) == 1
