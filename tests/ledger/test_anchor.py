"""Chain anchoring on eth-tester's in-process chain (the ``chain`` extra).

Skipped when web3 or eth-tester is not installed.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.errors import ReceiptError
from ledger.log import TransparencyLog

from .conftest import records

web3_module = pytest.importorskip("web3")
pytest.importorskip("eth_tester")

from ledger import cli  # noqa: E402
from ledger.anchor import ChainAnchor, anchor_payload, verify_anchor  # noqa: E402
from ledger.note import Checkpoint  # noqa: E402

runner = CliRunner()


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def chain() -> Any:
    return web3_module.Web3(web3_module.EthereumTesterProvider())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def anchor(log: TransparencyLog, chain: Any, clock: Clock) -> ChainAnchor:
    return ChainAnchor(
        log,
        chain,
        chain.eth.accounts[0],
        every_entries=10,
        every_seconds=600,
        clock=clock,
    )


def _grow(log: TransparencyLog, count: int) -> None:
    start = log.size()
    log.append(*records(count, start))
    log.checkpoint()


def test_anchors_every_n_entries_or_seconds_not_per_append(
    log: TransparencyLog, anchor: ChainAnchor, clock: Clock
) -> None:
    assert anchor.maybe_anchor() is None  # empty log
    _grow(log, 5)
    first = anchor.maybe_anchor()
    assert first is not None and first.size == 5
    _grow(log, 3)
    assert anchor.maybe_anchor() is None  # 3 entries, no time passed
    _grow(log, 8)
    second = anchor.maybe_anchor()
    assert second is not None and second.size == 16
    _grow(log, 1)
    clock.now += 601
    third = anchor.maybe_anchor()
    assert third is not None and third.size == 17
    assert third.block_number > second.block_number > first.block_number


def test_receipt_with_anchor_verifies_on_the_chain(
    log: TransparencyLog, anchor: ChainAnchor, chain: Any
) -> None:
    _grow(log, 5)
    first = anchor.maybe_anchor()
    _grow(log, 11)
    second = anchor.maybe_anchor()
    assert first is not None and second is not None
    early = anchor.attach(log.receipt(2))
    assert early["anchor"]["tree_size"] == 5
    assert verify_anchor(early, chain, chain.eth.accounts[0]) == first.block_number
    late = anchor.attach(log.receipt(9))
    assert late["anchor"]["tree_size"] == 16
    assert verify_anchor(late, chain, chain.eth.accounts[0]) == second.block_number
    _grow(log, 2)
    unanchored = anchor.attach(log.receipt(17))
    assert "anchor" not in unanchored


def _anchored_receipt(log: TransparencyLog, anchor: ChainAnchor) -> dict[str, Any]:
    _grow(log, 5)
    anchor.maybe_anchor()
    _grow(log, 6)
    return anchor.attach(log.receipt(3))


def _bump(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(root_hash=_bump(a["root_hash"])), "does not carry this"),
        (lambda a: a.update(tree_size=6), "does not carry this"),
        (lambda a: a.update(chain_id=1), "chain id is"),
        (
            lambda a: a.update(consistency_proof=[_bump(a["consistency_proof"][0])]),
            "not consistent",
        ),
        (lambda a: a.update(tx_hash="0x" + "00" * 32), "not found"),
        (lambda a: a.pop("root_hash"), "malformed"),
    ],
)
def test_altered_anchor_is_refused(
    log: TransparencyLog, anchor: ChainAnchor, chain: Any, change: Any, message: str
) -> None:
    receipt = _anchored_receipt(log, anchor)
    changed = copy.deepcopy(receipt)
    change(changed["anchor"])
    with pytest.raises(ReceiptError, match=message) as caught:
        verify_anchor(changed, chain, chain.eth.accounts[0])
    assert caught.value.step == "anchor"


def test_anchor_from_another_account_or_missing_entry_is_refused(
    log: TransparencyLog, anchor: ChainAnchor, chain: Any
) -> None:
    receipt = _anchored_receipt(log, anchor)
    with pytest.raises(ReceiptError, match="not sent by the anchor key"):
        verify_anchor(receipt, chain, chain.eth.accounts[1])
    later = log.receipt(8)
    later["anchor"] = receipt["anchor"]
    with pytest.raises(ReceiptError, match="anchored tree of size 5 lacks the entry"):
        verify_anchor(later, chain, chain.eth.accounts[0])
    with pytest.raises(ReceiptError, match="carries no anchor"):
        verify_anchor(log.receipt(1), chain, chain.eth.accounts[0])


def test_payload_names_origin_size_and_root(log: TransparencyLog) -> None:
    payload = anchor_payload(Checkpoint(log.origin, 3, bytes(32)))
    assert payload == (
        b"claims-ledger-anchor/v1\n"
        + log.origin.encode()
        + b"\n3\n"
        + base64.b64encode(bytes(32))
        + b"\n"
    )


def test_cli_checks_the_anchor_when_given_an_rpc(
    log: TransparencyLog,
    anchor: ChainAnchor,
    chain: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receipt = _anchored_receipt(log, anchor)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(receipt))
    monkeypatch.setattr(cli, "_web3_for", lambda url: chain)
    args = ["verify-receipt", str(path), "--key", log.signer.vkey]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "chain anchor not checked (give --rpc)" in result.output
    account = chain.eth.accounts[0]
    rpc = ["--rpc", "http://127.0.0.1:8545"]
    result = runner.invoke(cli.app, [*args, *rpc, "--anchor-address", account])
    assert result.exit_code == 0, result.output
    assert "anchored in block" in result.output
    result = runner.invoke(cli.app, [*args, *rpc])
    assert result.exit_code == 1
    assert "--rpc needs --anchor-address" in result.output
    other = chain.eth.accounts[2]
    result = runner.invoke(cli.app, [*args, *rpc, "--anchor-address", other])
    assert result.exit_code == 1
    assert "receipt NOT verified: receipt anchor check failed" in result.output
