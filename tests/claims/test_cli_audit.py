"""An auditor handed a workspace's store audits it with the published keys.

`claims ledger verify` and `prove` used to open the workspace's private
ledger and witness keys, so an auditor needed the passphrase that signs for
the consortium. With `--keys-file` they trust the published ledger-keys.json
(the demo writes it) and need no secret.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from claims.cli.main import app
from claims.consortium import Consortium
from ledger.receipt import verify_receipt

runner = CliRunner()


@pytest.fixture
def published(consortium: Consortium, tmp_path: Path) -> Path:
    path = tmp_path / "ledger-keys.json"
    path.write_text(json.dumps(consortium.trust_file()), encoding="utf-8")
    return path


def test_verify_and_prove_need_no_passphrase_with_the_published_keys(
    consortium: Consortium, published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "not the workspace's passphrase")
    workspace = ["-w", str(consortium.settings.workspace)]
    without = runner.invoke(app, [*workspace, "ledger", "verify"])
    assert "the passphrase does not open the keys" in str(without.exception)
    audited = runner.invoke(
        app, [*workspace, "ledger", "verify", "--keys-file", str(published)]
    )
    assert audited.exit_code == 0, (audited.output, audited.exception)
    assert audited.output.startswith("ledger verified: claims.consortium.example/")
    proved = runner.invoke(
        app, [*workspace, "ledger", "prove", "1", "--keys-file", str(published)]
    )
    assert proved.exit_code == 0, (proved.output, proved.exception)
    trust = json.loads(published.read_text(encoding="utf-8"))
    receipt = json.loads(proved.stdout)
    result = verify_receipt(receipt, trust["keys"], min_cosignatures=2)
    assert result.leaf_index == 1


def test_keys_that_did_not_sign_the_ledger_fail_the_audit(
    consortium: Consortium, published: Path, tmp_path: Path
) -> None:
    from ledger.note import CosignatureSigner, NoteSigner

    trust = json.loads(published.read_text(encoding="utf-8"))
    impostor = NoteSigner.generate("claims.consortium.example/ledger").vkey
    forged = {**trust, "keys": [impostor, *trust["keys"][1:]]}
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged), encoding="utf-8")
    workspace = ["-w", str(consortium.settings.workspace)]
    result = runner.invoke(
        app, [*workspace, "ledger", "verify", "--keys-file", str(path)]
    )
    assert result.exit_code == 1
    assert "ledger NOT verified" in result.output
    strangers = [CosignatureSigner.generate(f"w{i}.example").vkey for i in range(3)]
    path.write_text(
        json.dumps({**trust, "keys": [trust["keys"][0], *strangers]}), encoding="utf-8"
    )
    result = runner.invoke(
        app, [*workspace, "ledger", "verify", "--keys-file", str(path)]
    )
    assert result.exit_code == 1


def test_a_keys_file_without_the_ledgers_key_is_refused(
    consortium: Consortium, published: Path, tmp_path: Path
) -> None:
    trust = json.loads(published.read_text(encoding="utf-8"))
    path = tmp_path / "witnesses-only.json"
    path.write_text(json.dumps({**trust, "keys": trust["keys"][1:]}), encoding="utf-8")
    workspace = ["-w", str(consortium.settings.workspace)]
    result = runner.invoke(
        app, [*workspace, "ledger", "verify", "--keys-file", str(path)]
    )
    assert "holds no key of the ledger claims.consortium.example/ledger" in str(
        result.exception
    )
