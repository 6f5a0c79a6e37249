"""Tests for `mpc_lite.service`: three party services over HTTP on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest
from nacl.signing import SigningKey

from mpc_lite.errors import InvalidInput, MpcError, PartyUnavailable, ProtocolError
from mpc_lite.fraud import joint_fraud_check
from mpc_lite.service import HttpTransport, JobSpec, RemoteJob, fetch_result
from mpc_lite.transport import SealedMessage
from tests.mpc_lite.conftest import Services, consortium

BATCH = {"a": ("a2", "a3", "a4"), "b": ("b1",)}


def _specs(job_id: str, kind: str, services: Services) -> dict[str, JobSpec]:
    parties = tuple(sorted(services.members))
    return {
        name: JobSpec(job_id, kind, parties, BATCH.get(name, ()), min_parties=2)
        for name in parties
    }


def _job(services: Services, job_id: str, kind: str, member: str = "a") -> RemoteJob:
    key = services.members[member].signing_key if member in services.members else None
    return RemoteJob(
        services.endpoints,
        _specs(job_id, kind, services),
        member=member,
        signing_key=key or SigningKey.generate(),
    )


def _run(services: Services, job_id: str, kind: str) -> dict[str, dict]:
    with _job(services, job_id, kind) as job:
        job.run()
    return {
        name: fetch_result(
            services.endpoints[name],
            job_id,
            member=name,
            signing_key=services.members[name].signing_key,
        )
        for name in BATCH
    }


def _in_process() -> dict[str, object]:
    members = consortium()
    by_id = {c.claim_id: c for m in members for c in m.holdings}
    batch = {name: [by_id[i] for i in ids] for name, ids in BATCH.items()}
    return joint_fraud_check(members, batch, job_id="local", min_parties=2).verdicts


def test_three_services_give_the_in_process_result(services: Services) -> None:
    duplicates = _run(services, "http-1/dup", "duplicate")
    scores = _run(services, "http-1/score", "score")
    local = _in_process()
    for name, ids in BATCH.items():
        for claim_id in ids:
            verdict = local[claim_id]
            assert duplicates[name][claim_id] == verdict.duplicate
            remote = scores[name][claim_id]
            assert remote["flagged"] == verdict.flagged
            if verdict.score is None:
                assert remote["score"] is None
            else:
                assert remote["score"] == pytest.approx(verdict.score)
    assert duplicates["a"]["a2"] is True and duplicates["b"]["b1"] is True
    assert scores["a"]["a4"]["score"] is None  # cat is held by one insurer only


def test_a_party_dropping_out_names_it_and_a_retry_completes(
    services: Services,
) -> None:
    with _job(services, "drop-1", "score") as job:
        job.start()
        job.round(1)
        services.stop("c")
        with pytest.raises(PartyUnavailable, match="'c' is unreachable") as caught:
            job.round(2)
    assert caught.value.party == "c"
    assert caught.value.round == 2

    services.restart("c")
    retried = _run(services, "drop-1.retry", "score")
    assert retried["a"]["a2"] == _run(services, "drop-2", "score")["a"]["a2"]


def test_results_go_only_to_their_owner(services: Services) -> None:
    with _job(services, "owner-1", "duplicate") as job:
        job.run()
    with pytest.raises(MpcError, match="party 'a' answered HTTP 403"):
        fetch_result(
            services.endpoints["b"],
            "owner-1",
            member="a",
            signing_key=services.members["a"].signing_key,
        )


def test_control_requests_from_non_members_are_refused(services: Services) -> None:
    with _job(services, "outsider-1", "duplicate", member="mallory") as job:
        with pytest.raises(MpcError, match="party 'a' answered HTTP 403"):
            job.start()


def test_a_replayed_message_over_http_names_party_and_round(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[SealedMessage] = []
    original = HttpTransport.send

    def recording(self: HttpTransport, message: SealedMessage) -> None:
        sent.append(message)
        original(self, message)

    monkeypatch.setattr(HttpTransport, "send", recording)
    with _job(services, "replay-1", "duplicate") as job:
        job.start()
        job.round(1)
        to_b = [m for m in sent if m.unverified_envelope().recipient == "b"]
        httpx.post(
            f"{services.endpoints['b']}/mpc/inbox", content=to_b[0].to_bytes()
        ).raise_for_status()
        with pytest.raises(ProtocolError, match="'a' in round 1 refused by 'b'") as e:
            job.round(2)
    caught = e
    assert (caught.value.party, caught.value.round) == ("a", 1)


def test_an_unreachable_node_is_named_with_the_round(services: Services) -> None:
    with _job(services, "gone-1", "duplicate") as job:
        job.start()
        services.stop("b")
        with pytest.raises(PartyUnavailable, match="'b' is unreachable") as caught:
            job.round(1)
    assert caught.value.party == "b"
    assert caught.value.round == 1


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"job_id": "j"}', b"[" * 5000 + b"]" * 5000],
)
def test_a_malformed_job_spec_is_refused_as_input(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="the job spec is malformed"):
        JobSpec.from_json(body)
