"""JSON from a user that is too deep, of the wrong shape or not JSON at all.

Every reader of a user's JSON goes through `credentials.parse.load_user_json`
(nesting at most 64 deep, syntax errors by line and column). Regression
inputs are named after the report that found them: a FHIR bundle nested
2,000 deep crashed `claims demo --fhir`, `claims hospital issue`, `claims
adjudicate` and `claims ledger verify-receipt` with a RecursionError (exit
70), and `"entry": null` crashed intake with a TypeError.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from typer.testing import CliRunner

from claims.cli import app
from claims.demo import DemoOptions, example_bundles, run_demo
from claims.fhir_intake import (
    BundleInvalid,
    BundleUnreadable,
    ClaimRefused,
    load_directory,
    read_bundle,
    treatment_from_claim,
)
from credentials.did_key import did_from_public_key
from credentials.errors import MalformedDocument
from credentials.parse import load_user_json

from .test_fhir_intake import _bundle

REPO = Path(__file__).resolve().parents[2]
DEEP = 2000
"""How deep the reported bundles were nested."""
DID = did_from_public_key(bytes(nacl.signing.SigningKey(bytes(32)).verify_key))


def _deep_bundle() -> bytes:
    """A FHIR bundle whose one entry holds a list nested `DEEP` deep."""
    nested = b"[" * DEEP + b"]" * DEEP
    return (
        b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource":'
        b' {"resourceType": "Basic", "extension": ' + nested + b"}}]}"
    )


def _write(folder: Path, name: str, data: Any) -> Path:
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _claims(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed `claims` command, whose `main()` turns errors into exits."""
    script = Path(sys.executable).parent / "claims"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "claims"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "400", "CLAIMS_KEY_PASSPHRASE": "tests-only"},
        timeout=120,
        check=False,
    )


# -- the one reader ---------------------------------------------------------------


class TestLoadUserJson:
    def test_deep_nesting_is_refused_before_the_parser_recurses(self) -> None:
        with pytest.raises(
            MalformedDocument, match="^JSON nesting is deeper than 64 in a.json$"
        ):
            load_user_json(b"[" * DEEP + b"]" * DEEP, what="a.json")
        with pytest.raises(MalformedDocument, match="deeper than 64"):
            load_user_json(b'{"a":' * 100_000, what="a.json")

    def test_64_deep_is_read(self) -> None:
        value = load_user_json(b"[" * 64 + b"]" * 64)
        for _ in range(63):
            value = value[0]
        assert value == []

    def test_brackets_and_escaped_quotes_inside_strings_do_not_count(self) -> None:
        text = '["\\"' + "[" * 100 + '", "{\\\\"]'
        assert load_user_json(text) == ['"' + "[" * 100, "{\\"]

    def test_a_syntax_error_is_named_by_line_and_column(self) -> None:
        with pytest.raises(MalformedDocument) as caught:
            load_user_json(b'{\n  "a": 1,\n  "b" 2\n}', what="a.json")
        assert str(caught.value) == (
            "a.json is not valid JSON (line 3, column 7: Expecting ':' delimiter)"
        )

    def test_numbers_keep_their_digits_and_a_bom_is_dropped(self) -> None:
        data = '\ufeff{"value": 140.52}'.encode()
        assert load_user_json(data, parse_float=Decimal) == {"value": Decimal("140.52")}

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"\xff{}", "the input is not UTF-8 (byte 0)"),
            (b"[" + b"1" * 5000 + b"]", "the input holds an integer too long to read"),
            (b"", "the input is not valid JSON (line 1, column 1: Expecting value)"),
        ],
    )
    def test_other_refusals(self, data: bytes, message: str) -> None:
        with pytest.raises(MalformedDocument) as caught:
            load_user_json(data)
        assert str(caught.value) == message


# -- FHIR bundles: one bad file is skipped, the others go on ------------------------


class TestBundles:
    def test_a_bundle_nested_2000_deep_is_refused_by_name(self, tmp_path: Path) -> None:
        path = _write(tmp_path, "deep.json", _deep_bundle())
        with pytest.raises(BundleUnreadable) as caught:
            read_bundle(path)
        assert str(caught.value) == (
            "deep.json: JSON nesting is deeper than 64 in the file"
        )

    def test_a_syntax_error_names_the_file_line_and_column(
        self, tmp_path: Path
    ) -> None:
        path = _write(tmp_path, "a.json", '{"resourceType": "Bundle",\n "type" 1}')
        with pytest.raises(BundleUnreadable) as caught:
            read_bundle(path)
        assert str(caught.value) == (
            "a.json: the file is not valid JSON (line 2, column 9:"
            " Expecting ':' delimiter)"
        )

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (
                lambda b: b.update(entry=None),
                "Bundle.entry is null, not a list of entries",
            ),
            (
                lambda b: b.update(entry={"resource": {}}),
                "Bundle.entry is an object, not a list of entries",
            ),
            (
                lambda b: b["entry"].append(7),
                "Bundle.entry[4] is a number, not an object",
            ),
            (
                lambda b: b["entry"][1].update(resource="Organization"),
                "Bundle.entry[1].resource is a string, not an object",
            ),
            (
                lambda b: b["entry"][1]["resource"].pop("resourceType"),
                "Bundle.entry[1].resource has no resourceType",
            ),
            (
                lambda b: b["entry"][1]["resource"].update(resourceType=["x"]),
                "Bundle.entry[1].resource.resourceType is a list, not a string",
            ),
            (
                lambda b: b["entry"][1]["resource"].update(resourceType="Claims"),
                "Bundle.entry[1].resource.resourceType 'Claims' is not an R4 resource",
            ),
            (
                lambda b: b["entry"][3]["resource"]["provider"].update(reference=None),
                "Bundle.entry[3].resource.provider.reference is null; FHIR JSON"
                " leaves out an absent element",
            ),
            (
                lambda b: b["entry"][3]["resource"]["item"][0].update(encounter=None),
                "Bundle.entry[3].resource.item[0].encounter is null; FHIR JSON"
                " leaves out an absent element",
            ),
            (
                lambda b: b["entry"][0]["resource"]["name"][0].update(
                    given=["Pat", None]
                ),
                "Bundle.entry[0].resource.name[0].given[1] is null; FHIR JSON"
                " allows null in an array only beside its _given array",
            ),
            (
                lambda b: b["entry"][0]["resource"].update({"[/x]": None}),
                "Bundle.entry[0].resource.? is null; FHIR JSON leaves out an"
                " absent element",
            ),
            (lambda b: b.update(type=["collection"]), "Bundle.type (a list) is not"),
        ],
        ids=[
            "entry null",
            "entry an object",
            "entry item a number",
            "resource a string",
            "no resourceType",
            "resourceType a list",
            "resourceType unknown",
            "null reference",
            "null encounter list",
            "null in a primitive array",
            "null at a name that is not an element",
            "type a list",
        ],
    )
    def test_a_bundle_of_the_wrong_shape_names_the_file_and_the_path(
        self, tmp_path: Path, change: Any, message: str
    ) -> None:
        bundle = _bundle()
        change(bundle)
        path = _write(tmp_path, "a.json", bundle)
        with pytest.raises(BundleInvalid) as caught:
            read_bundle(path)
        assert str(caught.value).startswith(f"a.json: {message}")

    def test_a_null_beside_its_extension_array_is_fhir_and_is_read(
        self, tmp_path: Path
    ) -> None:
        bundle = _bundle()
        name = bundle["entry"][0]["resource"]["name"][0]
        name["given"] = [None, "Pat"]
        name["_given"] = [
            {"extension": [{"url": "http://x.example", "valueCode": "a"}]}
        ]
        name["_given"].append(None)
        contents = read_bundle(_write(tmp_path, "a.json", bundle))
        assert contents.patients["p1"].name == "Pat Testperson"
        assert len(contents.treatments) == 1

    def test_bad_bundles_are_skipped_and_the_others_read(self, tmp_path: Path) -> None:
        _write(tmp_path, "a_deep.json", _deep_bundle())
        bundle = _bundle()
        bundle["entry"] = None
        _write(tmp_path, "b_null.json", bundle)
        _write(tmp_path, "c_good.json", _bundle())
        result = load_directory(tmp_path)
        assert [b.source for b in result.bundles] == ["c_good.json"]
        assert len(result.treatments) == 1
        assert [str(error) for error in result.errors] == [
            "a_deep.json: JSON nesting is deeper than 64 in the file",
            "b_null.json: Bundle.entry is null, not a list of entries",
        ]


class TestStandaloneClaims:
    """A Claim on its own (`claims adjudicate`): refused, field by field."""

    def _claim(self, **changes: Any) -> dict[str, Any]:
        claim: dict[str, Any] = _bundle()["entry"][3]["resource"]
        claim.update(changes)
        return claim

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"provider": None}, "Claim.provider: is null;"),
            ({"insurance": "x"}, "Claim.insurance: Input should be a valid list"),
            ({"item": [1]}, "Claim.item[0]"),
            ({"diagnosis": "x"}, "Claim.diagnosis: Input should be a valid list"),
        ],
    )
    def test_a_claim_of_the_wrong_shape_is_refused_not_crashed_on(
        self, changes: dict[str, Any], expected: str
    ) -> None:
        with pytest.raises(ClaimRefused) as caught:
            treatment_from_claim(self._claim(**changes))
        assert any(str(e).startswith(expected) for e in caught.value.errors), [
            str(e) for e in caught.value.errors
        ]


# -- the commands, as a user runs them -------------------------------------------


def test_hospital_issue_refuses_a_deep_bundle_and_names_it(tmp_path: Path) -> None:
    _write(tmp_path, "deep.json", _deep_bundle())
    result = _claims(
        "-w", "ws", "hospital", "issue", "deep.json", "--claim", "c1", "--to", DID,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "error: deep.json: JSON nesting is deeper than 64 in the file" in (
        result.stderr
    )
    assert "internal error" not in result.stderr


def test_hospital_issue_refuses_a_null_entry_list(tmp_path: Path) -> None:
    bundle = _bundle()
    bundle["entry"] = None
    _write(tmp_path, "null.json", bundle)
    runner = CliRunner()
    args = [
        "-w",
        str(tmp_path / "ws"),
        "hospital",
        "issue",
        str(tmp_path / "null.json"),
    ]
    result = runner.invoke(app, [*args, "--claim", "c1", "--to", DID])
    assert isinstance(result.exception, BundleInvalid)
    assert str(result.exception) == (
        "null.json: Bundle.entry is null, not a list of entries"
    )


def test_hospital_issue_names_the_option_of_a_bad_did(tmp_path: Path) -> None:
    bundle = _write(tmp_path, "a.json", _bundle())
    result = CliRunner().invoke(
        app, ["hospital", "issue", str(bundle), "--claim", "c1", "--to", "alice"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--to': value is not a DID" in " ".join(
        result.output.split()
    )


def test_hospital_issue_says_why_the_claim_named_was_refused(tmp_path: Path) -> None:
    bundle = _write(tmp_path, "a.json", _bundle(total={"value": 1, "currency": "USD"}))
    result = CliRunner().invoke(
        app, ["hospital", "issue", str(bundle), "--claim", "c1", "--to", DID]
    )
    assert str(result.exception) == (
        "a.json: Claim/c1 was refused at intake: Claim.total: is less than the sum"
        " of item.net"
    )
    assert result.exception.remedy == (  # type: ignore[union-attr]
        "correct those fields of the Claim, then issue again"
    )


def test_hospital_issue_lists_each_refused_claim_when_none_matches(
    tmp_path: Path,
) -> None:
    bundle = _write(tmp_path, "a.json", _bundle(total={"value": 1, "currency": "USD"}))
    result = CliRunner().invoke(
        app, ["hospital", "issue", str(bundle), "--encounter", "e1", "--to", DID]
    )
    assert str(result.exception) == (
        "a.json holds no usable FHIR Claim for encounter e1; 1 claim(s) of the"
        " bundle were refused at intake:\n"
        "  Claim/c1: Claim.total: is less than the sum of item.net"
    )


def test_adjudicate_refuses_a_deep_claim(tmp_path: Path) -> None:
    _write(tmp_path, "deep.json", _deep_bundle())
    result = _claims("adjudicate", "deep.json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "error: JSON nesting is deeper than 64 in the input" in result.stderr


@pytest.mark.parametrize("which", ["receipt", "keys"])
def test_verify_receipt_refuses_a_deep_receipt_or_keys_file(
    tmp_path: Path, which: str
) -> None:
    deep = _write(tmp_path, "deep.json", b"[" * DEEP + b"]" * DEEP)
    keys = _write(tmp_path, "keys.json", {"keys": ["x+00000000+AAAA"]})
    receipt = _write(tmp_path, "r.json", {})
    args = [str(deep if which == "receipt" else receipt), "--keys-file"]
    args.append(str(deep if which == "keys" else keys))
    result = CliRunner().invoke(app, ["ledger", "verify-receipt", *args])
    assert result.exit_code == 1
    assert f"error: JSON nesting is deeper than 64 in {which} file {deep}" in " ".join(
        result.output.split()
    )


def test_demo_skips_a_deep_bundle_and_a_refused_claim_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "tests-only")
    fhir = tmp_path / "fhir"
    shutil.copytree(example_bundles(), fhir)
    _write(fhir, "deep.json", _deep_bundle())
    null = _bundle()
    null["entry"] = None
    _write(fhir, "null.json", null)
    _write(fhir, "refused.json", _bundle(total={"value": 1, "currency": "USD"}))
    said: list[str] = []
    summary = run_demo(
        DemoOptions(
            fhir=fhir,
            out=tmp_path / "out",
            workspace=tmp_path / "ws",
            prefect=False,
            progress=said.append,
        )
    )
    assert said[:3] == [
        "skipped bundle deep.json: JSON nesting is deeper than 64 in the file",
        "skipped bundle null.json: Bundle.entry is null, not a list of entries",
        "claim Claim/c1 skipped: Claim.total: is less than the sum of item.net"
        " (refused.json)",
    ]
    assert summary["bundles_skipped"] == [
        line.removeprefix("skipped bundle ") for line in said[:2]
    ]
    assert summary["claims_skipped"] == [said[2]]
    assert summary["settled"] > 0
