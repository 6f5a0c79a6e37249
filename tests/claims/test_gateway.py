"""The insurer's gateway: sign-in, submission, tracking, and every bad input.

Also home of `people_consortium`, the small workspace the people tests share
(three insurers, one hospital, two claimants with credentials).
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import base58
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

with warnings.catch_warnings():
    # Starlette asks for `httpx2` in its test client; httpx is what we ship.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from claims.consortium import Consortium
from claims.demo import example_bundles, example_policy
from claims.fhir_intake import load_directory
from claims.gateway import GatewayClient, GatewayError, create_app, login_message
from claims.hospital import issue_treatment_credential, publish_status_list
from claims.settings import Settings
from credentials.data_integrity import add_proof
from credentials.keys import Ed25519Key
from flows.process import run_steps
from ledger.receipt import verify_receipt


@pytest.fixture(autouse=True)
def _key_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace keys are sealed: give this module's workspaces a passphrase."""
    monkeypatch.setenv("CLAIMS_KEY_PASSPHRASE", "people-tests-passphrase")


@dataclass
class People:
    """A small workspace: who is in it and what they hold."""

    consortium: Consortium
    alice: Ed25519Key
    bob: Ed25519Key
    credentials: dict[str, list[dict[str, Any]]]
    """Credentials issued to each claimant DID."""


def make_people(folder: Path) -> People:
    """Three insurers, the example hospitals, Alice and Bob enrolled at insurer-1."""
    consortium = Consortium(Settings.load(folder))
    for number in (1, 2, 3):
        consortium.add_insurer(
            f"insurer-{number}", f"Insurer {number}", example_policy(number)
        )
    treatments = [t for _, t in load_directory(example_bundles()).treatments][:4]
    for treatment in treatments:
        consortium.add_hospital(treatment.provider, treatment.provider_name or "H")
    alice = consortium.add_member("alice", "claimant", "Alice")[1]
    bob = consortium.add_member("bob", "claimant", "Bob")[1]
    held: dict[str, list[dict[str, Any]]] = {alice.did: [], bob.did: []}
    for position, treatment in enumerate(treatments):
        holder = alice if position % 2 == 0 else bob
        consortium.enrol("insurer-1", holder.did, date(2000, 1, 1))
        held[holder.did].append(
            issue_treatment_credential(
                consortium, treatment.provider, treatment, holder.did
            )
        )
    for provider in {t.provider for t in treatments}:
        publish_status_list(consortium, provider)
    return People(consortium, alice, bob, held)


@pytest.fixture
def people(tmp_path: Path) -> People:
    return make_people(tmp_path / "ws")


@pytest.fixture
def http(people: People) -> Iterator[TestClient]:
    with TestClient(create_app(people.consortium, "insurer-1")) as client:
        yield client


def client_for(http: TestClient, key: Ed25519Key) -> GatewayClient:
    return GatewayClient(str(http.base_url), key, http=http)


def _signed_in(http: TestClient, key: Ed25519Key) -> dict[str, str]:
    return {"Authorization": f"Bearer {client_for(http, key).sign_in()}"}


# -- sign-in -------------------------------------------------------------------


def test_a_claimant_signs_in_with_the_did_key_and_gets_a_token(
    http: TestClient, people: People
) -> None:
    did = people.alice.did
    nonce = http.post("/auth/challenge", json={"did": did}).json()
    message = login_message(nonce["audience"], did, nonce["nonce"])
    assert nonce["message"].encode() == message
    signature = base64.b64encode(people.alice.sign(message)).decode()
    token = http.post(
        "/auth/token",
        json={"did": did, "nonce": nonce["nonce"], "signature": signature},
    )
    assert token.status_code == 200
    assert token.json()["did"] == did
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert http.get("/claims", headers=headers).json() == []


def test_a_signature_by_another_key_is_refused_and_spends_the_nonce(
    http: TestClient, people: People
) -> None:
    did = people.alice.did
    nonce = http.post("/auth/challenge", json={"did": did}).json()["nonce"]
    forged = people.bob.sign(login_message("insurer-1.insurers.example", did, nonce))
    signature = "z" + base58.b58encode(forged).decode()
    body = {"did": did, "nonce": nonce, "signature": signature}
    refused = http.post("/auth/token", json=body)
    assert refused.status_code == 401
    assert refused.json()["error"] == "bad_signature"
    again = http.post("/auth/token", json=body)
    assert again.json()["error"] == "unknown_nonce"


def test_a_login_signature_for_another_insurer_is_refused(
    http: TestClient, people: People
) -> None:
    did = people.alice.did
    nonce = http.post("/auth/challenge", json={"did": did}).json()["nonce"]
    elsewhere = people.alice.sign(
        login_message("insurer-2.insurers.example", did, nonce)
    )
    refused = http.post(
        "/auth/token",
        json={
            "did": did,
            "nonce": nonce,
            "signature": base64.b64encode(elsewhere).decode(),
        },
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "bad_signature"


@pytest.mark.parametrize(
    ("header", "error"),
    [
        (None, "no_token"),
        ("Bearer not-a-token", "bad_token"),
        ("Bearer abc.def", "bad_token"),
        ("Basic dXNlcjpwdw==", "no_token"),
    ],
)
def test_missing_or_bad_tokens_are_refused(
    http: TestClient, header: str | None, error: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = http.get("/claims", headers=headers)
    assert response.status_code in (401, 403)
    assert response.json()["error"] == error


def test_an_expired_token_is_refused(people: People) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    app = create_app(
        people.consortium,
        "insurer-1",
        clock=lambda: now[0],
        token_ttl=timedelta(minutes=5),
    )
    with TestClient(app) as http:
        headers = _signed_in(http, people.alice)
        assert http.get("/claims", headers=headers).status_code == 200
        now[0] += timedelta(minutes=6)
        response = http.get("/claims", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "expired_token",
        "detail": "the bearer token has expired; sign in again",
    }


def test_a_did_that_is_not_a_did_key_is_refused(http: TestClient) -> None:
    response = http.post("/auth/challenge", json={"did": "did:web:example.com"})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_did"


# -- claims --------------------------------------------------------------------


def test_a_claim_goes_from_submission_to_a_verifiable_receipt(
    http: TestClient, people: People
) -> None:
    client = client_for(http, people.alice)
    credential = people.credentials[people.alice.did][0]
    submitted = client.submit(credential)
    assert submitted["state"] == "submitted"
    assert [e["state"] for e in submitted["timeline"]] == ["submitted"]
    with pytest.raises(GatewayError, match="is submitted, not settled"):
        client.receipt(submitted["id"])

    run_steps(people.consortium)

    claim = client.claim(submitted["id"])
    states = [entry["state"] for entry in claim["timeline"]]
    assert states[0] == "submitted"
    assert claim["state"] == states[-1]
    assert claim["state"] in {"settled", "in_review", "denied"}
    assert [c["id"] for c in client.claims()] == [submitted["id"]]
    response = client.claim_response(submitted["id"])
    assert response["resourceType"] == "ClaimResponse"
    if claim["state"] == "settled":
        trust = people.consortium.trust_file()
        verified = verify_receipt(
            client.receipt(submitted["id"]),
            trust["keys"],
            min_cosignatures=trust["min_cosignatures"],
        )
        assert verified.entry["claim_id"] == submitted["id"]


def test_another_claimants_claim_is_refused_like_an_unknown_one(
    http: TestClient, people: People
) -> None:
    mine = client_for(http, people.alice).submit(
        people.credentials[people.alice.did][0]
    )
    headers = _signed_in(http, people.bob)
    for path in ("", "/receipt", "/claim-response"):
        response = http.get(f"/claims/{mine['id']}{path}", headers=headers)
        assert response.status_code == 404
        assert response.json()["error"] == "claim_not_found"
    assert http.get("/claims", headers=headers).json() == []
    unknown = http.get("/claims/no-such-claim", headers=headers)
    assert unknown.json() == mine_refusal()


def mine_refusal() -> dict[str, str]:
    return {"error": "claim_not_found", "detail": "no such claim of yours here"}


def test_a_presentation_of_someone_else_is_refused(
    http: TestClient, people: People
) -> None:
    """Bob, signed in, posts a submission Alice signed: 403, nothing stored."""
    alice = client_for(http, people.alice)
    challenge = alice._call("POST", "/challenges")
    from claims.submission import make_submission

    submission = make_submission(
        people.credentials[people.alice.did][0],
        people.alice,
        challenge=challenge["challenge"],
        domain=challenge["domain"],
    )
    response = http.post(
        "/claims", json=submission, headers=_signed_in(http, people.bob)
    )
    assert response.status_code == 403
    assert response.json()["error"] == "not_your_presentation"

    # Alice names Bob as the holder and signs that herself.
    presentation = dict(submission["presentation"], holder=people.bob.did)
    proof = presentation.pop("proof")
    submission["presentation"] = add_proof(
        presentation,
        people.alice,
        proof_purpose="authentication",
        created=datetime.now(UTC),
        challenge=proof["challenge"],
        domain=proof["domain"],
    )
    response = http.post(
        "/claims", json=submission, headers=_signed_in(http, people.bob)
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "the presentation is signed by someone other than the claimant"
    )
    assert client_for(http, people.bob).claims() == []


def test_a_replayed_submission_is_refused(http: TestClient, people: People) -> None:
    alice = client_for(http, people.alice)
    challenge = alice._call("POST", "/challenges")
    from claims.submission import make_submission

    submission = make_submission(
        people.credentials[people.alice.did][0],
        people.alice,
        challenge=challenge["challenge"],
        domain=challenge["domain"],
    )
    headers = _signed_in(http, people.alice)
    assert http.post("/claims", json=submission, headers=headers).status_code == 201
    again = http.post("/claims", json=submission, headers=headers)
    assert again.status_code == 400
    assert again.json() == {
        "error": "submission_refused",
        "detail": "the challenge was already used: submissions cannot be replayed",
    }


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[]", 422, "invalid_request"),
        (
            b'{"challenge": 1, "presentation": {}, "consent": {}}',
            422,
            "invalid_request",
        ),
        (
            b'{"challenge": "x", "presentation": {"holder": 5},'
            b' "consent": {"jointFraudCheck": "yes"}}',
            422,
            "invalid_request",
        ),
    ],
)
def test_malformed_submissions_get_a_json_error(
    http: TestClient, people: People, body: bytes, status: int, error: str
) -> None:
    headers = _signed_in(http, people.alice) | {"content-type": "application/json"}
    response = http.post("/claims", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_a_body_over_the_limit_is_refused_before_it_is_parsed(
    http: TestClient, people: People
) -> None:
    headers = _signed_in(http, people.alice) | {"content-type": "application/json"}
    response = http.post("/claims", content=b" " * (1024 * 1024 + 1), headers=headers)
    assert response.status_code == 413
    assert response.json() == {
        "error": "body_too_large",
        "detail": "the request body is over 1048576 bytes",
    }


def test_a_streamed_body_over_the_limit_is_refused(people: People) -> None:
    app = create_app(people.consortium, "insurer-1", body_limit=100)

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 20

    with TestClient(app) as http:
        response = http.post("/auth/challenge", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_unknown_routes_and_methods_answer_json(http: TestClient) -> None:
    assert http.get("/nowhere").json()["error"] == "not_found"
    response = http.delete("/claims")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_a_gateway_for_a_member_that_is_not_an_insurer_cannot_be_made(
    people: People,
) -> None:
    with pytest.raises(GatewayError.__mro__[1], match="alice is not an insurer"):
        create_app(people.consortium, "alice")


def test_the_fraud_check_outcome_is_shown_only_as_in_review(
    http: TestClient, people: People
) -> None:
    from sqlmodel import Session

    from claims.states import ClaimState
    from claims.store import Claim

    claim_id = client_for(http, people.alice).submit(
        people.credentials[people.alice.did][0], consent=False
    )["id"]
    run_steps(people.consortium)
    with Session(people.consortium.store.engine) as session:
        stored = session.get(Claim, claim_id)
        assert stored is not None and stored.state == ClaimState.IN_REVIEW.value
    seen = client_for(http, people.alice).claim(claim_id)
    assert seen["in_review"] is True
    assert seen["reason"] == "a person at the insurer is reviewing this claim"
    assert "duplicate" not in seen and "risk_score" not in seen
    assert all(
        e["reason"] is None or "consent" not in e["reason"] for e in seen["timeline"]
    )


def test_the_openapi_document_is_served(http: TestClient) -> None:
    document = http.get("/openapi.json").json()
    assert {"/auth/challenge", "/auth/token", "/claims", "/claims/{claim_id}"} <= set(
        document["paths"]
    )
    assert "HTTPBearer" in document["components"]["securitySchemes"]


# -- schemathesis ----------------------------------------------------------------


@pytest.fixture
def gateway_app(people: People) -> Any:
    return create_app(people.consortium, "insurer-1")


@pytest.fixture
def api_schema(gateway_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", gateway_app)


@pytest.fixture
def bearer(gateway_app: Any, people: People) -> dict[str, str]:
    with TestClient(gateway_app) as http:
        return _signed_in(http, people.alice)


served = schemathesis.pytest.from_fixture("api_schema")


@served.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_makes_the_gateway_fail(
    case: Any, bearer: dict[str, str]
) -> None:
    """Schemathesis against the served OpenAPI document: never a 5xx.

    Each operation is tried signed in (so the handlers behind the token check
    are reached) and without a token.
    """
    case.call_and_validate(headers=bearer, checks=[not_a_server_error])
    case.call_and_validate(checks=[not_a_server_error])


@pytest.mark.parametrize("first_byte", [0xCC, 0xB8])  # base64 "z...", "u..."
def test_a_base64_signature_starting_like_multibase_is_read_as_base64(
    first_byte: int,
) -> None:
    """A plain base64 signature can begin with `z` or `u` (one in 32); it
    used to be read as multibase and refused, failing one sign-in in 32."""
    from claims.gateway._auth import decode_signature

    raw = bytes([first_byte]) + bytes(range(63))
    text = base64.b64encode(raw).decode()
    assert text[0] in "zu" and len(text) == 88
    assert decode_signature(text) == raw
    assert decode_signature("z" + base58.b58encode(raw).decode()) == raw
    url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert decode_signature("u" + url) == raw
