"""The hospital, wallet and vc commands, driven as a user would drive them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.pwhash
import nacl.signing
import pytest
from typer.testing import CliRunner, Result

import claims.wallet
from claims.cli import app
from claims.errors import ConfigError, NotFound
from claims.wallet import PASSPHRASE_ENV, WalletError
from credentials.did_key import did_from_public_key
from credentials.errors import KeyFileError, MalformedDocument
from credentials.key_file import KdfLimits
from tests.claims._text import flat

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "claims" / "examples" / "bundles" / "maren_oakridge.json"
# Two FHIR Claims of that bundle: one named by its encounter, and an
# encounter that two Claims bill (so naming it alone is ambiguous).
CLAIM_ID = "d4507001-82a1-59e7-8737-8d9b7d06817c"
ENCOUNTER_ID = "97e88a8e-5eeb-5048-86d7-98ad433a13cc"
SHARED_ENCOUNTER = "a074bc3b-c101-5adf-bd5d-24764c944960"
PROVIDER = "40a71ad9-9d6d-50ee-b447-96327e80ceea"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_wallets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2id in tests, and a passphrase from the environment."""
    monkeypatch.setattr(
        claims.wallet,
        "KDF_LIMITS",
        KdfLimits(nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN),
    )
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)


class Cli:
    """`claims -w WORKSPACE ...` in process; output as text or JSON."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(app, ["-w", str(self.workspace), *args])

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "ws")


@pytest.fixture
def issued(cli: Cli, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A hospital, a wallet holding one credential the hospital issued to it."""
    hospital = cli.json("hospital", "init", PROVIDER, "--name", "Oakridge", "--json")
    wallet = cli.json("wallet", "init", "--name", "alice", "--json")
    credential_file = tmp_path / "credential.json"
    cli.ok(
        "hospital",
        "issue",
        str(BUNDLE),
        "--claim",
        CLAIM_ID,
        "--to",
        wallet["did"],
        "--out",
        str(credential_file),
    )
    cli.ok("wallet", "add", str(credential_file), "--name", "alice")
    yield {
        "hospital": hospital,
        "wallet": wallet,
        "file": credential_file,
        "credential": json.loads(credential_file.read_text()),
    }


# -- help ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["hospital", "init"],
        ["hospital", "issue"],
        ["hospital", "revoke"],
        ["hospital", "status-list"],
        ["wallet", "init"],
        ["wallet", "list"],
        ["wallet", "add"],
        ["wallet", "present"],
        ["vc", "validate"],
        ["vc", "verify"],
    ],
)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example: claims " + " ".join(command) in result.stdout


# -- hospital ------------------------------------------------------------------


def test_hospital_init_creates_an_accredited_did_key_and_is_idempotent(
    cli: Cli,
) -> None:
    first = cli.json("hospital", "init", "general", "--name", "General", "--json")
    again = cli.json("hospital", "init", "general", "--json")
    assert first["did"].startswith("did:key:z6Mk")
    assert again["did"] == first["did"]
    assert first["accredited_until"] is not None
    assert Path(first["published"]).is_file()


def test_issue_by_encounter_writes_a_credential_to_stdout(cli: Cli) -> None:
    cli.ok("hospital", "init", PROVIDER)
    did = cli.json("wallet", "init", "--json")["did"]
    credential = cli.json(
        "hospital", "issue", str(BUNDLE), "--encounter", ENCOUNTER_ID, "--to", did
    )
    assert credential["credentialSubject"]["id"] == did
    assert credential["credentialSubject"]["treatment"]["invoice"] == CLAIM_ID
    assert credential["credentialStatus"]["statusPurpose"] == "revocation"
    assert credential["proof"]["cryptosuite"] == "eddsa-jcs-2022"


def test_issue_refuses_an_encounter_billed_by_two_claims(cli: Cli) -> None:
    cli.ok("hospital", "init", PROVIDER)
    did = cli.json("wallet", "init", "--json")["did"]
    result = cli(
        "hospital", "issue", str(BUNDLE), "--encounter", SHARED_ENCOUNTER, "--to", did
    )
    assert isinstance(result.exception, NotFound)
    assert "has 2 Claims for encounter" in str(result.exception)


def test_issue_refuses_a_patient_value_that_is_not_a_did_key(cli: Cli) -> None:
    cli.ok("hospital", "init", PROVIDER)
    result = cli("hospital", "issue", str(BUNDLE), "--claim", CLAIM_ID, "--to", "bob")
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "Invalid value for '--to': value is not a DID [not_a_did]" in output


def test_issue_needs_the_hospital_to_be_initialised(cli: Cli) -> None:
    did = cli.json("wallet", "init", "--json")["did"]
    result = cli("hospital", "issue", str(BUNDLE), "--claim", CLAIM_ID, "--to", did)
    assert isinstance(result.exception, NotFound)
    assert "is not a hospital of this workspace" in str(result.exception)


def test_issue_needs_exactly_one_of_encounter_and_claim(cli: Cli) -> None:
    did = did_from_public_key(bytes(nacl.signing.SigningKey(bytes(32)).verify_key))
    result = cli("hospital", "issue", str(BUNDLE), "--to", did)
    assert result.exit_code == 2  # a usage mistake
    assert "Invalid value for '--encounter' / '--claim'" in flat(result.output)
    assert "name the treatment with exactly one of them" in flat(result.output)


def test_revoke_by_file_sets_the_bit_and_verify_then_fails_on_status(
    cli: Cli, issued: dict[str, Any]
) -> None:
    before = cli.json("vc", "verify", str(issued["file"]), "--json")
    assert before["ok"] is True

    revoked = cli.json("hospital", "revoke", str(issued["file"]), "--json")
    assert revoked["credential"] == issued["credential"]["id"]
    assert revoked["hospital"] == PROVIDER
    assert (
        str(revoked["index"])
        == issued["credential"]["credentialStatus"]["statusListIndex"]
    )

    result = cli("vc", "verify", str(issued["file"]), "--json")
    assert result.exit_code == 1
    status = _check(json.loads(result.stdout), "status")
    assert status["outcome"] == "failed"
    assert status["reason"].startswith("revoked")


def test_revoke_of_an_unknown_id_is_not_found(cli: Cli) -> None:
    cli.ok("hospital", "init", PROVIDER)
    result = cli("hospital", "revoke", "urn:uuid:never-issued")
    assert isinstance(result.exception, NotFound)
    assert "issued credential urn:uuid:never-issued" in str(result.exception)


def test_status_list_publishes_a_signed_list_that_verifies(
    cli: Cli, issued: dict[str, Any], tmp_path: Path
) -> None:
    document = cli.json("hospital", "status-list", PROVIDER, "--json")
    assert "BitstringStatusListCredential" in document["type"]
    assert document["issuer"] == issued["hospital"]["did"]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(document))
    report = cli.json("vc", "verify", str(path), "--no-status", "--json")
    assert report["ok"] is True
    shown = cli.ok("hospital", "status-list", PROVIDER, "--no-publish").stdout
    assert "131072 entries, 0 set" in " ".join(shown.split())


# -- wallet --------------------------------------------------------------------


def test_wallet_key_file_is_sealed_and_owner_only(
    cli: Cli, issued: dict[str, Any]
) -> None:
    key_file = cli.workspace / "wallets" / "alice" / "key.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    sealed = json.loads(key_file.read_text())
    assert sealed["kdf"] == "argon2id"
    assert "seed" not in sealed and "privateKeyMultibase" not in sealed


def test_wallet_list_shows_ids_and_dates_only(cli: Cli, issued: dict[str, Any]) -> None:
    listing = cli.json("wallet", "list", "--name", "alice", "--json")
    assert listing["did"] == issued["wallet"]["did"]
    [entry] = listing["credentials"]
    assert entry["id"] == issued["credential"]["id"]
    assert entry["issuer"] == issued["hospital"]["did"]
    assert "treatment" not in json.dumps(listing)


def test_wallet_refuses_a_credential_about_someone_else(
    cli: Cli, issued: dict[str, Any]
) -> None:
    cli.ok("wallet", "init", "--name", "bob")
    result = cli("wallet", "add", str(issued["file"]), "--name", "bob")
    assert isinstance(result.exception, WalletError)
    assert "is not about this wallet's holder" in str(result.exception)


def test_wallet_init_refuses_to_replace_a_wallet(cli: Cli) -> None:
    cli.ok("wallet", "init", "--name", "alice")
    result = cli("wallet", "init", "--name", "alice")
    assert isinstance(result.exception, WalletError)
    assert "already exists" in str(result.exception)


def test_present_prints_a_presentation_that_verifies_for_its_challenge(
    cli: Cli, issued: dict[str, Any], tmp_path: Path
) -> None:
    vp = cli.json(
        "wallet", "present", "--name", "alice", "--challenge", "c-1", "--domain", "d"
    )
    assert vp["holder"] == issued["wallet"]["did"]
    assert vp["proof"]["proofPurpose"] == "authentication"
    path = tmp_path / "vp.json"
    path.write_text(json.dumps(vp))

    good = cli.json(
        "vc", "verify", str(path), "--challenge", "c-1", "--domain", "d", "--json"
    )
    assert good["kind"] == "presentation"
    assert good["ok"] is True
    assert _check(good, "holder_binding")["outcome"] == "passed"

    wrong = cli("vc", "verify", str(path), "--challenge", "c-2", "--domain", "d")
    assert wrong.exit_code == 1
    assert "wrong_challenge" in wrong.stdout


def test_present_with_the_wrong_passphrase_fails_without_the_key(
    cli: Cli, issued: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "not it")
    result = cli(
        "wallet", "present", "--name", "alice", "--challenge", "c", "--domain", "d"
    )
    assert isinstance(result.exception, KeyFileError)
    assert "wrong passphrase or damaged file" in str(result.exception)


def test_present_reads_the_passphrase_from_a_prompt_without_the_variable(
    cli: Cli, issued: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setattr("claims.cli._common.interactive", lambda: True)
    result = cli.runner.invoke(
        app,
        ["-w", str(cli.workspace), "wallet", "present", "-n", "alice"]
        + ["--challenge", "c", "--domain", "d"],
        input=PASSPHRASE + "\n",
    )
    assert result.exit_code == 0, result.output
    assert PASSPHRASE not in result.output


def test_without_the_variable_or_a_terminal_the_error_names_the_variable(
    cli: Cli, issued: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setattr("claims.cli._common.interactive", lambda: False)
    result = cli(
        "wallet", "present", "-n", "alice", "--challenge", "c", "--domain", "d"
    )
    assert isinstance(result.exception, ConfigError)
    assert "no terminal to ask for it" in str(result.exception)
    assert result.exception.remedy == f"set {PASSPHRASE_ENV}"
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    result = cli(
        "wallet", "present", "-n", "alice", "--challenge", "c", "--domain", "d"
    )
    assert isinstance(result.exception, ConfigError)
    assert result.exception.remedy == (
        f"{PASSPHRASE_ENV} is set but empty; set it to the passphrase"
    )


def test_present_of_a_missing_wallet_is_not_found(cli: Cli) -> None:
    result = cli("wallet", "present", "--challenge", "c", "--domain", "d")
    assert isinstance(result.exception, NotFound)
    assert "no wallet named 'default'" in str(result.exception)


# -- vc validate ---------------------------------------------------------------


def test_validate_lists_every_violation(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "@context": ["https://www.w3.org/2018/credentials/v1"],
                "type": ["TreatmentCredential"],
                "issuer": "not a url",
                "validFrom": "2025-01-01",
                "credentialSubject": {},
            }
        )
    )
    result = CliRunner().invoke(app, ["vc", "validate", str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    text = "\n".join(report["violations"])
    for expected in (
        "@context must start with https://www.w3.org/ns/credentials/v2",
        "type does not include VerifiableCredential",
        "issuer is not a URL",
        "validFrom is not an XML Schema dateTimeStamp",
        "credentialSubject is not a non-empty object",
    ):
        assert expected in text


def test_validate_accepts_an_issued_credential(issued: dict[str, Any]) -> None:
    result = CliRunner().invoke(app, ["vc", "validate", str(issued["file"])])
    assert result.exit_code == 0
    assert "a well-formed credential" in " ".join(result.stdout.split())


def test_verify_outside_the_consortium_needs_the_two_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    result = CliRunner().invoke(
        app, ["-w", str(tmp_path / "none"), "vc", "verify", str(path)]
    )
    assert isinstance(result.exception, NotFound)
    assert "--no-status --no-trust" in (result.exception.remedy or "")


def test_verify_reports_a_tampered_credential_as_a_failed_signature(
    cli: Cli, issued: dict[str, Any], tmp_path: Path
) -> None:
    tampered = dict(issued["credential"], validUntil="2099-01-01T00:00:00Z")
    path = tmp_path / "tampered.json"
    path.write_text(json.dumps(tampered))
    result = cli("vc", "verify", str(path), "--json")
    assert result.exit_code == 1
    signature = _check(json.loads(result.stdout), "signature")
    assert signature["outcome"] == "failed"
    assert "does not verify" in signature["reason"]


# -- bad input, through the installed command (no traceback) ------------------


def _bad_inputs() -> list[tuple[str, bytes, str]]:
    deep = b"[" * 65 + b"]" * 65
    return [
        ("not JSON", b"{this is not json", "input is not valid JSON (line 1"),
        ("over 1 MiB", b'"' + b"a" * (1 << 20) + b'"', "the limit is 1048576"),
        ("nested deeper than 64", deep, "JSON nesting is deeper than 64"),
        ("duplicate keys", b'{"a": 1, "a": 2}', "duplicate member 'a'"),
        ("NaN", b'{"a": NaN}', "JSON number NaN is not allowed"),
        ("over 2^53", b'{"a": 9007199254740993}', "beyond +-(2^53 - 1)"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [(data, message) for _, data, message in _bad_inputs()],
    ids=[name for name, _, _ in _bad_inputs()],
)
def test_vc_validate_refuses_bad_json_with_its_own_message(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "input.json"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["vc", "validate", str(path)])
    assert isinstance(result.exception, MalformedDocument)
    assert message in str(result.exception)


def _claims(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `claims` command (its `main()` handles errors)."""
    script = Path(sys.executable).parent / "claims"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "claims"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "400"},
        timeout=60,
        check=False,
    )


def test_installed_command_prints_bad_json_errors_without_a_traceback(
    tmp_path: Path,
) -> None:
    """`main()` turns a refusal into one line and exit code 1 (three of the
    six kinds here; the in-process test above checks every message)."""
    for name, data, message in _bad_inputs()[:3]:
        path = tmp_path / f"{len(data)}.json"
        path.write_bytes(data)
        completed = _claims("vc", "validate", str(path))
        assert completed.returncode == 1, name
        assert message in completed.stderr, name
        assert "Traceback" not in completed.stderr + completed.stdout, name


def test_installed_command_names_the_remedy_for_a_missing_hospital(
    tmp_path: Path,
) -> None:
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    completed = _claims(
        "-w", str(tmp_path / "ws"), "hospital", "issue", str(BUNDLE),
        "--claim", CLAIM_ID, "--to", did,
    )  # fmt: skip
    assert completed.returncode == 3
    assert f"'{PROVIDER}' is not a hospital of this workspace" in completed.stderr
    assert f"claims hospital init {PROVIDER}" in completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout


def _check(report: dict[str, Any], name: str) -> dict[str, str]:
    return next(check for check in report["checks"] if check["check"] == name)


def test_verify_accepts_the_w3c_vector_with_status_and_trust_skipped(
    vectors_dir: Path,
) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-jcs-2022/signedJCS.json."""
    path = vectors_dir / "vc" / "vc-di-eddsa" / "eddsa-jcs-2022" / "signedJCS.json"
    result = CliRunner().invoke(
        app, ["vc", "verify", str(path), "--no-status", "--no-trust", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert _check(report, "status")["outcome"] == "skipped"


def test_verify_runs_eddsa_rdfc_2022_with_pinned_contexts(vectors_dir: Path) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-rdfc-2022/signedDataInt.json, with
    w3c/vc-data-model contexts/credentials/{v2,examples/v2} pinned."""
    pytest.importorskip("pyld")
    vc = vectors_dir / "vc"
    path = vc / "vc-di-eddsa" / "eddsa-rdfc-2022" / "signedDataInt.json"
    folder = vc / "jsonld-contexts" / "vc-data-model" / "contexts" / "credentials"
    base = ["vc", "verify", str(path), "--no-status", "--no-trust", "--json"]
    pinned = [
        "--context",
        f"https://www.w3.org/ns/credentials/v2={folder / 'v2'}",
        "--context",
        f"https://www.w3.org/ns/credentials/examples/v2={folder / 'examples' / 'v2'}",
    ]
    without = CliRunner().invoke(app, base)
    assert without.exit_code == 1
    assert (
        "needs pinned JSON-LD contexts"
        in _check(json.loads(without.stdout), "signature")["reason"]
    )
    result = CliRunner().invoke(app, base + pinned)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True
