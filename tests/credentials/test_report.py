"""check_document: every check reported as passed, failed, undetermined or skipped."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from credentials.holder import present
from credentials.keys import Ed25519Key
from credentials.parse import load_json
from credentials.report import CHECKS, VerificationReport, check_document
from tests.credentials.conftest import CHALLENGE, DOMAIN, NOW, World


def _report(world: World, document: Any, **kw: Any) -> VerificationReport:
    arguments: dict[str, Any] = {
        "now": NOW,
        "issuers": world.registry,
        "status_lists": world.fetch,
        "challenge": CHALLENGE,
        "domain": DOMAIN,
    }
    arguments.update(kw)
    return check_document(document, **arguments)


def _outcomes(report: VerificationReport) -> dict[str, str]:
    return {check.name: check.outcome for check in report.checks}


def _reason(report: VerificationReport, name: str) -> str:
    return next(check.reason for check in report.checks if check.name == name)


def _vp(world: World, credential: dict[str, Any], key: Ed25519Key | None = None) -> Any:
    return present(
        [credential],
        key or world.patient,
        challenge=CHALLENGE,
        domain=DOMAIN,
        created=NOW,
    )


def test_a_good_presentation_passes_every_check(world: World) -> None:
    report = _report(world, _vp(world, world.issue()))
    assert report.kind == "presentation"
    assert _outcomes(report) == dict.fromkeys(CHECKS, "passed")
    assert report.ok
    assert report.to_dict()["ok"] is True


def test_a_credential_alone_has_no_holder_or_challenge_checks(world: World) -> None:
    report = _report(world, world.issue())
    assert report.kind == "credential"
    assert list(_outcomes(report)) == list(CHECKS[:5])
    assert report.ok


def test_skipped_checks_do_not_fail_the_report(world: World) -> None:
    report = _report(world, world.issue(), issuers=None, status_lists=None)
    assert _outcomes(report)["issuer_trusted"] == "skipped"
    assert _outcomes(report)["status"] == "skipped"
    assert report.ok


def test_malformed_document_leaves_the_rest_undetermined(world: World) -> None:
    report = _report(world, {"type": "VerifiableCredential"})
    outcomes = _outcomes(report)
    assert outcomes.pop("data_model") == "failed"
    assert set(outcomes.values()) == {"undetermined"}
    assert "issuer is missing" in _reason(report, "data_model")
    assert not report.ok


def test_every_failure_is_reported_not_only_the_first(
    world: World, stranger: Ed25519Key
) -> None:
    credential = world.issue(valid_until=NOW - timedelta(days=1))
    credential["credentialSubject"]["treatment"]["total"] = "1.00"
    world.revocation.set(int(credential["credentialStatus"][0]["statusListIndex"]))
    report = _report(world, _vp(world, credential, stranger), challenge="other")
    outcomes = _outcomes(report)
    assert outcomes["signature"] == "failed"
    assert outcomes["validity"] == "failed"
    assert _reason(report, "validity").endswith("expired")
    assert outcomes["status"] == "failed"
    assert "revoked" in _reason(report, "status")
    assert outcomes["holder_binding"] == "failed"
    assert outcomes["challenge"] == "failed"
    assert "wrong_challenge" in _reason(report, "challenge")


def test_unreachable_status_list_is_undetermined_not_passed(world: World) -> None:
    def unreachable(url: str) -> dict[str, Any]:
        raise OSError("down")

    report = _report(world, world.issue(), status_lists=unreachable)
    assert _outcomes(report)["status"] == "undetermined"
    assert not report.ok


def test_presentation_without_a_challenge_to_compare_is_undetermined(
    world: World,
) -> None:
    report = _report(world, _vp(world, world.issue()), challenge=None)
    assert _outcomes(report)["challenge"] == "undetermined"
    assert not report.ok


def test_untrusted_issuer_fails(world: World, stranger: Ed25519Key) -> None:
    world.hospital = stranger
    report = _report(world, world.issue(status=None))
    assert _outcomes(report)["issuer_trusted"] == "failed"
    assert "is not a registered issuer" in _reason(report, "issuer_trusted")


def test_w3c_vector_verifies_outside_the_consortium(vc_vectors: Path) -> None:
    """w3c/vc-di-eddsa TestVectors/eddsa-jcs-2022/signedJCS.json, checked
    without registry or status lists (as `claims vc verify --no-status
    --no-trust` does)."""
    path = vc_vectors / "vc-di-eddsa" / "eddsa-jcs-2022" / "signedJCS.json"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared vectors")
    report = check_document(load_json(path.read_bytes()), now=NOW)
    assert _outcomes(report)["signature"] == "passed"
    assert _outcomes(report)["data_model"] == "passed"
