"""verify_presentation: the happy path and every VerificationError reason."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from credentials.data_integrity import add_proof
from credentials.errors import REASONS, VerificationError
from credentials.holder import present
from credentials.keys import Ed25519Key
from credentials.status_list import StatusList, StatusListCache, status_list_credential
from credentials.verifier import verify_presentation

from .conftest import (
    CHALLENGE,
    DOMAIN,
    ISSUED,
    LIST_URL,
    NOW,
    SUSPENSION_URL,
    World,
    treatment_subject,
)

SECRET_MARKERS = ("MRN-42", "710824005", "44054006", "120.50")


def _present(
    world: World, credentials: list[dict[str, Any]], **kw: Any
) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "challenge": CHALLENGE,
        "domain": DOMAIN,
        "created": NOW,
        "key": world.patient,
    }
    arguments.update(kw)
    key = arguments.pop("key")
    return present(credentials, key, **arguments)


def _verify(world: World, vp: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    arguments: dict[str, Any] = {
        "challenge": CHALLENGE,
        "domain": DOMAIN,
        "issuers": world.registry,
        "status_lists": world.fetch,
        "now": NOW,
    }
    arguments.update(kw)
    return verify_presentation(vp, **arguments)


def _fails(
    world: World, vp: dict[str, Any], reason: str, match: str, **kw: Any
) -> VerificationError:
    with pytest.raises(VerificationError, match=match) as caught:
        _verify(world, vp, **kw)
    assert caught.value.reason == reason
    for marker in SECRET_MARKERS:
        assert marker not in str(caught.value)
    return caught.value


def test_valid_presentation_returns_its_credentials(world: World) -> None:
    credential = world.issue()
    vp = _present(world, [credential])
    assert _verify(world, vp) == [credential]
    # One fetch per list, each list checked once.
    assert sorted(world.fetched) == sorted([LIST_URL, SUSPENSION_URL])


def test_several_credentials_share_one_fetch_per_list(world: World) -> None:
    credentials = [world.issue(), world.issue(), world.issue()]
    assert _verify(world, _present(world, credentials)) == credentials
    assert len(world.fetched) == 2


def test_verified_result_is_a_copy(world: World) -> None:
    vp = _present(world, [world.issue()])
    result = _verify(world, vp)
    result[0]["issuer"] = "changed"
    assert vp["verifiableCredential"][0]["issuer"] == world.hospital.did


def test_treatment_round_trips_through_a_verified_credential(world: World) -> None:
    from claims.treatment import Treatment

    credential = world.issue()
    verified = _verify(world, _present(world, [credential]))
    treatment = Treatment.from_subject(verified[0]["credentialSubject"]["treatment"])
    assert treatment.to_subject() == credential["credentialSubject"]["treatment"]


# -- malformed ---------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda vp: vp.update({"@context": ["https://example.org/v1"]}), "must start"),
        (lambda vp: vp.update({"type": ["Presentation"]}), "VerifiablePresentation"),
        (lambda vp: vp.pop("holder"), "no holder DID"),
        (lambda vp: vp.update({"verifiableCredential": []}), "holds no credential"),
        (lambda vp: vp.update({"verifiableCredential": ["x"]}), "is not an object"),
    ],
)
def test_malformed_presentation(
    world: World, change: Callable[[dict[str, Any]], object], match: str
) -> None:
    vp = _present(world, [world.issue()])
    change(vp)
    _fails(world, vp, "malformed", match)


def test_not_a_dict_is_malformed(world: World) -> None:
    _fails(world, [], "malformed", "not a JSON object")  # type: ignore[arg-type]


def test_malformed_signed_credential_is_malformed(world: World) -> None:
    """A credential the issuer signed but that breaks VC DM 2.0 is refused."""
    credential = world.issue()
    bad = {k: v for k, v in credential.items() if k != "proof"}
    bad["credentialSubject"] = []
    signed = add_proof(
        bad, world.hospital, proof_purpose="assertionMethod", created=ISSUED
    )
    _fails(
        world,
        _present(world, [signed]),
        "malformed",
        r"credential 0 \(urn:uuid:.*\) is malformed: credentialSubject",
    )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("statusListIndex", 5, "not a decimal string"),
        ("statusListIndex", "-1", "not a decimal string"),
        ("statusListCredential", "", "no statusListCredential"),
        ("statusSize", 2, "statusSize is not 1"),
    ],
)
def test_malformed_status_entry(
    world: World, field: str, value: Any, match: str
) -> None:
    credential = world.issue()
    entry = copy.deepcopy(credential["credentialStatus"][0])
    entry[field] = value
    credential = world.issue(status=[entry])
    _fails(world, _present(world, [credential]), "malformed", match)


# -- presentation proof ------------------------------------------


def test_presentation_signed_by_someone_else(
    world: World, stranger: Ed25519Key
) -> None:
    vp = _present(world, [world.issue()], key=stranger)
    vp["holder"] = world.patient.did  # claims to be the patient
    _fails(world, vp, "bad_presentation_proof", "presentation proof: proof 0 signature")


def test_presentation_re_signed_under_a_holder_it_does_not_name(
    world: World, stranger: Ed25519Key
) -> None:
    credential = world.issue()
    unsigned = {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiablePresentation"],
        "holder": world.patient.did,
        "verifiableCredential": [credential],
    }
    vp = add_proof(
        unsigned,
        stranger,
        proof_purpose="authentication",
        created=NOW,
        challenge=CHALLENGE,
        domain=DOMAIN,
    )
    _fails(world, vp, "bad_presentation_proof", "not by its holder")


def test_presentation_without_proof(world: World) -> None:
    vp = _present(world, [world.issue()])
    del vp["proof"]
    _fails(world, vp, "bad_presentation_proof", "document has no proof")


def test_presentation_with_assertion_purpose(world: World) -> None:
    vp = _present(world, [world.issue()])
    unsigned = {k: v for k, v in vp.items() if k != "proof"}
    vp = add_proof(
        unsigned,
        world.patient,
        proof_purpose="assertionMethod",
        created=NOW,
        challenge=CHALLENGE,
        domain=DOMAIN,
    )
    _fails(world, vp, "bad_presentation_proof", "purpose 'authentication'")


def test_wrong_challenge(world: World) -> None:
    vp = _present(world, [world.issue()], challenge="old-challenge")
    _fails(world, vp, "wrong_challenge", "expected challenge")


def test_wrong_domain(world: World) -> None:
    vp = _present(world, [world.issue()], domain="insurer-b.example")
    _fails(world, vp, "wrong_domain", "expected domain 'insurer-a.example'")


# -- credential proof --------------------------------------------


def _tamper(credential: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = credential
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("credentialSubject", "treatment", "total"), "9120.50"),
        (("credentialSubject", "treatment", "lines", 0, "amount"), "999.00"),
        (("credentialSubject", "treatment", "patient_ref"), "MRN-43"),
        (
            ("credentialSubject", "id"),
            "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        ),
        (("validUntil",), "2099-01-01T00:00:00Z"),
        (("validFrom",), "2025-01-01T00:00:00Z"),
        (("id",), "urn:uuid:other"),
        (("type",), ["VerifiableCredential"]),
        (("credentialStatus", 0, "statusListIndex"), "0"),
        (
            ("@context",),
            ["https://www.w3.org/ns/credentials/v2", "https://x.example/v1"],
        ),
        (("issuer",), "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"),
        (("proof", "created"), "2025-02-01T09:30:01Z"),
    ],
)
def test_tampered_credential_fails_its_proof(
    world: World, path: tuple[Any, ...], value: Any
) -> None:
    credential = world.issue()
    _tamper(credential, path, value)
    vp = _present(world, [credential])  # the holder re-signs the tampered copy
    _fails(world, vp, "bad_credential_proof", r"credential 0 \(urn:uuid:")


def test_every_top_level_field_is_covered_by_the_proof(world: World) -> None:
    credential = world.issue()
    for name in [k for k in credential if k != "proof"]:
        tampered = copy.deepcopy(credential)
        tampered[name] = "x" if tampered[name] != "x" else "y"
        with pytest.raises(VerificationError) as caught:
            _verify(world, _present(world, [tampered]))
        assert caught.value.reason == "bad_credential_proof", name


def test_credential_signed_by_someone_other_than_its_issuer(
    world: World, stranger: Ed25519Key
) -> None:
    credential = world.issue()
    unsigned = {k: v for k, v in credential.items() if k != "proof"}
    forged = add_proof(
        unsigned, stranger, proof_purpose="assertionMethod", created=ISSUED
    )
    _fails(
        world, _present(world, [forged]), "bad_credential_proof", "not by its issuer"
    )


def test_credential_without_proof(world: World) -> None:
    credential = world.issue()
    del credential["proof"]
    _fails(world, _present(world, [credential]), "bad_credential_proof", "no proof")


# -- issuer trust ------------------------------------------------


def test_untrusted_issuer(world: World, stranger: Ed25519Key) -> None:
    world.hospital = stranger
    vp = _present(world, [world.issue()])
    _fails(world, vp, "untrusted_issuer", "is not a registered issuer")


def test_issuer_accreditation_ended_before_now(world: World) -> None:
    registry = type(world.registry)()
    registry.add(
        world.hospital.did, "H", ISSUED - timedelta(days=1), NOW - timedelta(days=1)
    )
    vp = _present(world, [world.issue()])
    _fails(
        world,
        vp,
        "untrusted_issuer",
        "was not accredited at 2025-03-01",
        issuers=registry,
    )


def test_issuer_not_accredited_when_it_signed(world: World) -> None:
    registry = type(world.registry)()
    registry.add(world.hospital.did, "H", ISSUED + timedelta(days=1))
    vp = _present(world, [world.issue()])
    _fails(
        world,
        vp,
        "untrusted_issuer",
        "was not accredited at 2025-02-01",
        issuers=registry,
    )


# -- validity window ---------------------------------------------


def test_not_yet_valid_beyond_skew(world: World) -> None:
    vp = _present(world, [world.issue()])
    early = ISSUED - timedelta(minutes=6)
    _fails(world, vp, "not_yet_valid", "is not valid yet", now=early)
    assert _verify(world, vp, now=ISSUED - timedelta(minutes=4))


def test_expired_beyond_skew(world: World) -> None:
    vp = _present(world, [world.issue()])
    until = ISSUED + timedelta(days=365)
    _fails(world, vp, "expired", "has expired", now=until + timedelta(minutes=6))
    assert _verify(world, vp, now=until + timedelta(minutes=4))


def test_skew_is_configurable(world: World) -> None:
    vp = _present(world, [world.issue()])
    moment = ISSUED - timedelta(minutes=1)
    _fails(world, vp, "not_yet_valid", "not valid yet", now=moment, skew=timedelta(0))


def test_naive_now_is_refused(world: World) -> None:
    vp = _present(world, [world.issue()])
    with pytest.raises(ValueError, match="timezone-aware"):
        _verify(world, vp, now=NOW.replace(tzinfo=None))


# -- subject -----------------------------------------------------


def test_holder_not_subject(world: World, stranger: Ed25519Key) -> None:
    credential = world.issue(subject=treatment_subject(stranger.did))
    _fails(
        world, _present(world, [credential]), "holder_not_subject", "not the presenter"
    )


def test_subject_without_id_is_not_the_holder(world: World) -> None:
    subject = treatment_subject(world.patient.did)
    del subject["id"]
    credential = world.issue(subject=subject)
    _fails(
        world, _present(world, [credential]), "holder_not_subject", "not the presenter"
    )


# -- status ------------------------------------------------------


def _index(credential: dict[str, Any]) -> int:
    return int(credential["credentialStatus"][0]["statusListIndex"])


def test_revoked(world: World) -> None:
    credential = world.issue()
    world.revocation.set(_index(credential))
    _fails(
        world,
        _present(world, [credential]),
        "revoked",
        f"revoked in status list {LIST_URL}",
    )


def test_suspended_then_reinstated(world: World) -> None:
    credential = world.issue()
    index = int(credential["credentialStatus"][1]["statusListIndex"])
    world.suspension.set(index)
    vp = _present(world, [credential])
    _fails(world, vp, "suspended", "suspended in status list")
    world.suspension.set(index, False)
    world.published = {}
    assert _verify(world, vp)


def test_another_credentials_revocation_does_not_matter(world: World) -> None:
    credential = world.issue()
    world.revocation.set((_index(credential) + 1) % world.revocation.length)
    assert _verify(world, _present(world, [credential]))


def _undetermined(world: World, match: str, **kw: Any) -> None:
    _fails(world, _present(world, [world.issue()]), "status_undetermined", match, **kw)


def test_unreachable_list_is_undetermined(world: World) -> None:
    def unreachable(url: str) -> dict[str, Any]:
        raise ConnectionError("network down")

    _undetermined(
        world, r"could not be retrieved \(ConnectionError\)", status_lists=unreachable
    )


def test_unparsable_list_is_undetermined(world: World) -> None:
    def garbage(url: str) -> dict[str, Any]:
        return json.loads("{not json")

    _undetermined(
        world, r"could not be retrieved \(JSONDecodeError\)", status_lists=garbage
    )


def test_list_that_is_not_a_credential_is_undetermined(world: World) -> None:
    _undetermined(
        world, "not a well-formed credential", status_lists=lambda url: {"a": 1}
    )


def test_badly_signed_list_is_undetermined(world: World) -> None:
    world.publish()
    listed = world.published[LIST_URL]
    listed["credentialSubject"]["encodedList"] = StatusList.new().encode()  # re-zeroed
    listed["validFrom"] = "2025-02-01T09:30:01Z"
    _undetermined(world, "has a bad proof")


def test_list_signed_by_another_issuer_is_undetermined(
    world: World, stranger: Ed25519Key
) -> None:
    world.publish()
    world.published[LIST_URL] = status_list_credential(
        stranger, LIST_URL, StatusList.new(), "revocation", ISSUED
    )
    _undetermined(world, f"is not issued and signed by {world.hospital.did}")


def test_list_for_another_purpose_is_undetermined(world: World) -> None:
    world.publish()
    world.published[LIST_URL] = status_list_credential(
        world.hospital, LIST_URL, StatusList.new(), "suspension", ISSUED
    )
    _undetermined(world, "is not a revocation list")


def test_list_with_another_id_is_undetermined(world: World) -> None:
    world.publish()
    world.published[LIST_URL] = world.published[SUSPENSION_URL]
    _undetermined(world, "carries the id of another list")


def test_list_of_another_type_is_undetermined(world: World) -> None:
    world.publish()
    listed = {k: v for k, v in world.published[LIST_URL].items() if k != "proof"}
    listed["type"] = ["VerifiableCredential"]
    world.published[LIST_URL] = add_proof(
        listed, world.hospital, proof_purpose="assertionMethod", created=ISSUED
    )
    _undetermined(world, "is not a BitstringStatusListCredential")


def test_short_list_is_undetermined(world: World) -> None:
    world.publish()
    listed = {k: v for k, v in world.published[LIST_URL].items() if k != "proof"}
    listed["credentialSubject"] = {
        **listed["credentialSubject"],
        "encodedList": StatusList.new(1024).encode(),
    }
    world.published[LIST_URL] = add_proof(
        listed, world.hospital, proof_purpose="assertionMethod", created=ISSUED
    )
    _undetermined(world, "shorter than the minimum 131072")


def test_undecodable_list_is_undetermined(world: World) -> None:
    world.publish()
    listed = {k: v for k, v in world.published[LIST_URL].items() if k != "proof"}
    listed["credentialSubject"] = {
        **listed["credentialSubject"],
        "encodedList": "uAAAA",
    }
    world.published[LIST_URL] = add_proof(
        listed, world.hospital, proof_purpose="assertionMethod", created=ISSUED
    )
    _undetermined(world, "cannot be decoded")


def test_expired_list_is_undetermined(world: World) -> None:
    world.publish()
    listed = {k: v for k, v in world.published[LIST_URL].items() if k != "proof"}
    listed["validUntil"] = "2025-02-15T00:00:00Z"
    world.published[LIST_URL] = add_proof(
        listed, world.hospital, proof_purpose="assertionMethod", created=ISSUED
    )
    _undetermined(world, "has expired")


def test_future_list_is_undetermined(world: World) -> None:
    world.publish()
    listed = {k: v for k, v in world.published[LIST_URL].items() if k != "proof"}
    listed["validFrom"] = "2025-04-01T00:00:00Z"
    world.published[LIST_URL] = add_proof(
        listed, world.hospital, proof_purpose="assertionMethod", created=ISSUED
    )
    _undetermined(world, "is not valid yet")


def test_index_beyond_the_list_is_undetermined(world: World) -> None:
    credential = world.issue()
    entry = copy.deepcopy(credential["credentialStatus"][0])
    entry["statusListIndex"] = str(10**7)
    credential = world.issue(status=[entry])
    _fails(
        world, _present(world, [credential]), "status_undetermined", "beyond the end"
    )


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("type", "StatusList2021Entry", "is not a BitstringStatusListEntry"),
        ("statusPurpose", "message", "unsupported statusPurpose 'message'"),
    ],
)
def test_unsupported_status_entries_are_undetermined(
    world: World, field: str, value: str, match: str
) -> None:
    credential = world.issue()
    entry = copy.deepcopy(credential["credentialStatus"][0])
    entry[field] = value
    credential = world.issue(status=[entry])
    _fails(world, _present(world, [credential]), "status_undetermined", match)


def test_credential_without_status_has_nothing_to_check(world: World) -> None:
    credential = world.issue(status=None)
    assert _verify(world, _present(world, [credential])) == [credential]
    assert world.fetched == []


def test_every_reason_is_exercised() -> None:
    """Guards the reason set: a new reason needs a test above."""
    assert REASONS == {
        "malformed",
        "bad_presentation_proof",
        "wrong_challenge",
        "wrong_domain",
        "bad_credential_proof",
        "untrusted_issuer",
        "not_yet_valid",
        "expired",
        "revoked",
        "suspended",
        "status_undetermined",
        "holder_not_subject",
    }
    with pytest.raises(ValueError, match="unknown verification reason"):
        VerificationError("x", reason="fine")


def test_status_list_cache_keeps_issuer_apart(
    world: World, patient: Ed25519Key
) -> None:
    """A second issuer pointing at the first issuer's list URL gets no free pass."""
    other = Ed25519Key.from_seed(bytes.fromhex("44" * 32))
    world.registry.add(other.did, "Other", ISSUED - timedelta(days=30))
    good = world.issue()
    sneaky = World(hospital=other, patient=patient, registry=world.registry)
    bad = sneaky.issue()
    vp = _present(world, [good, bad])
    _fails(world, vp, "status_undetermined", f"credential 1 .* signed by {other.did}")


def test_a_status_list_cache_checks_each_list_once_per_batch(world: World) -> None:
    lists = StatusListCache(world.fetch)
    for _ in range(3):
        assert _verify(world, _present(world, [world.issue()]), status_lists=lists)
    assert sorted(world.fetched) == sorted([LIST_URL, SUSPENSION_URL])


def test_a_revoked_credential_is_rejected_through_the_cache(world: World) -> None:
    good, revoked = world.issue(), world.issue()
    world.revocation.set(_index(revoked))
    lists = StatusListCache(world.fetch)
    assert _verify(world, _present(world, [good]), status_lists=lists)
    _fails(
        world,
        _present(world, [revoked]),
        "revoked",
        f"revoked in status list {LIST_URL}",
        status_lists=lists,
    )
    assert world.fetched.count(LIST_URL) == 1


def test_a_list_that_could_not_be_fetched_is_fetched_again(world: World) -> None:
    failures = [ConnectionError("network down")]

    def flaky(url: str) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return world.fetch(url)

    lists = StatusListCache(flaky)
    vp = _present(world, [world.issue()])
    _fails(
        world, vp, "status_undetermined", "could not be retrieved", status_lists=lists
    )
    assert _verify(world, vp, status_lists=lists)


def test_a_kept_list_is_checked_again_at_another_time(world: World) -> None:
    lists = StatusListCache(world.fetch)
    vp = _present(world, [world.issue()])
    assert _verify(world, vp, status_lists=lists)
    assert _verify(world, vp, status_lists=lists, now=NOW + timedelta(minutes=1))
    assert world.fetched.count(LIST_URL) == 2


def test_a_kept_list_gives_another_issuer_no_pass(
    world: World, patient: Ed25519Key
) -> None:
    other = Ed25519Key.from_seed(bytes.fromhex("44" * 32))
    world.registry.add(other.did, "Other", ISSUED - timedelta(days=30))
    lists = StatusListCache(world.fetch)
    assert _verify(world, _present(world, [world.issue()]), status_lists=lists)
    sneaky = World(hospital=other, patient=patient, registry=world.registry)
    vp = _present(world, [sneaky.issue()])
    _fails(
        world, vp, "status_undetermined", f"signed by {other.did}", status_lists=lists
    )
