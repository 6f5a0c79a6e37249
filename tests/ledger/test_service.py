"""Witnesses over HTTP: the tlog-witness endpoint and the remote witness client.

A real uvicorn server on 127.0.0.1 (a free port, in a thread) serves three
witnesses under three prefixes; each test starts and stops its own server.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine

from ledger import merkle
from ledger.errors import (
    BadRequest,
    ForkDetected,
    InconsistentProof,
    NotSignedByLog,
    SizeConflict,
    UnknownLog,
    WitnessError,
)
from ledger.log import TransparencyLog
from ledger.note import Checkpoint, NoteSigner, sign_note
from ledger.receipt import verify_receipt
from ledger.service import witness_router
from ledger.witness import (
    SIZE_MEDIA_TYPE,
    SqlWitnessState,
    Witness,
    format_add_checkpoint,
    parse_add_checkpoint,
)
from ledger.witness_client import RemoteWitness

from .conftest import ORIGIN, records


@dataclass
class Served:
    base: str
    witnesses: list[Witness]

    def remote(self, n: int, client: httpx.Client | None = None) -> RemoteWitness:
        return RemoteWitness(f"{self.base}/w{n}", self.witnesses[n].vkey, client=client)


@pytest.fixture
def served(engine: Engine, signer: NoteSigner) -> Iterator[Served]:
    state = SqlWitnessState(engine)
    witnesses = [
        Witness(f"w{n}.example", bytes([40 + n]) * 32, state, logs=[signer.vkey])
        for n in range(3)
    ]
    app = FastAPI()
    for n, witness in enumerate(witnesses):
        app.include_router(witness_router(witness), prefix=f"/w{n}")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            threading.Event().wait(0.01)
        assert server.started, "uvicorn did not start"
        yield Served(f"http://127.0.0.1:{port}", witnesses)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _post(served: Served, n: int, body: bytes) -> httpx.Response:
    return httpx.post(f"{served.base}/w{n}/add-checkpoint", content=body)


def test_log_is_cosigned_by_remote_witnesses(
    served: Served, log: TransparencyLog, signer: NoteSigner
) -> None:
    with httpx.Client() as client:
        remotes = [served.remote(n, client) for n in range(3)]
        for batch in range(3):
            log.append(*records(4 + batch, start=10 * batch))
            log.checkpoint()
            log.cosign(remotes, k=3)
            assert [r.known_size(ORIGIN) for r in remotes] == [log.size()] * 3
    assert [w.known_size(ORIGIN) for w in served.witnesses] == [log.size()] * 3
    receipt = log.receipt(5)
    vkeys = [signer.vkey, *(w.vkey for w in served.witnesses)]
    assert len(verify_receipt(receipt, vkeys, min_cosignatures=3).cosigners) == 3


def test_a_new_client_learns_the_size_from_a_conflict_and_retries(
    served: Served, log: TransparencyLog
) -> None:
    log.append(*records(6))
    log.checkpoint()
    log.cosign([served.remote(0)], k=1)
    log.append(*records(3, start=6))
    note = log.checkpoint()
    fresh = served.remote(0)
    with pytest.raises(SizeConflict, match="old size 0 given, last cosigned size is 6"):
        fresh.add_checkpoint(note, 0, [])
    assert fresh.known_size(ORIGIN) == 6
    again = served.remote(0)
    assert "w0.example" in log.cosign([again], k=1)
    assert served.witnesses[0].known_size(ORIGIN) == 9


def test_conflict_answer_has_the_size_media_type(
    served: Served, log: TransparencyLog
) -> None:
    log.append(*records(4))
    note = log.checkpoint()
    assert _post(served, 1, format_add_checkpoint(0, [], note)).status_code == 200
    log.append(*records(2, start=4))
    newer = log.checkpoint()
    answer = _post(served, 1, format_add_checkpoint(0, [], newer))
    assert answer.status_code == 409
    assert answer.headers["content-type"].startswith(SIZE_MEDIA_TYPE)
    assert answer.text == "4\n"


def test_same_size_with_another_root_is_a_conflict(
    served: Served, log: TransparencyLog, signer: NoteSigner
) -> None:
    log.append(*records(4))
    log.cosign([served.remote(0)], k=1)
    forked = sign_note(Checkpoint(ORIGIN, 4, bytes(32)).to_text(), [signer])
    answer = _post(served, 0, format_add_checkpoint(4, [], forked))
    assert (answer.status_code, answer.text) == (409, "4\n")
    remote = served.remote(0)
    with pytest.raises(ForkDetected, match="size 4 was cosigned with another root"):
        remote.add_checkpoint(forked, 4, [])


def test_bad_proof_is_422(
    served: Served, log: TransparencyLog, signer: NoteSigner
) -> None:
    log.append(*records(4))
    log.cosign([served.remote(2)], k=1)
    leaves = [merkle.leaf_hash(bytes([n])) for n in range(6)]
    forked = sign_note(Checkpoint(ORIGIN, 6, merkle.root(leaves)).to_text(), [signer])
    proof = merkle.consistency_proof(leaves, 4, 6)
    answer = _post(served, 2, format_add_checkpoint(4, proof, forked))
    assert answer.status_code == 422
    assert "size 6 is not consistent with cosigned size 4" in answer.text
    remote = served.remote(2)
    with pytest.raises(InconsistentProof, match="answered 422"):
        remote.add_checkpoint(forked, 4, proof)
    assert served.witnesses[2].known_size(ORIGIN) == 4


def test_unknown_origin_is_404_and_unsigned_is_403(
    served: Served, log: TransparencyLog
) -> None:
    other = NoteSigner.generate("other.example/log")
    elsewhere = sign_note(
        Checkpoint("other.example/log", 0, merkle.EMPTY_ROOT).to_text(), [other]
    )
    assert _post(served, 0, format_add_checkpoint(0, [], elsewhere)).status_code == 404
    impostor = NoteSigner.generate(ORIGIN)
    unsigned = sign_note(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).to_text(), [impostor])
    answer = _post(served, 0, format_add_checkpoint(0, [], unsigned))
    assert answer.status_code == 403
    remote = served.remote(0)
    with pytest.raises(UnknownLog, match="answered 404"):
        remote.add_checkpoint(elsewhere, 0, [])
    with pytest.raises(NotSignedByLog, match="answered 403"):
        remote.add_checkpoint(unsigned, 0, [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"old 0\n", "no empty line before the checkpoint"),
        (b"old 01\n\nx\n", "first line is not 'old <decimal size>'"),
        (b"new 0\n\nx\n", "first line is not 'old <decimal size>'"),
        (b"old 99999999999999999999\n\nx\n", "first line is not"),
        (b"old 9223372036854775808\n\nx\n", "beyond 2^63-1"),
        (b"old 0\nnot-base64!\n\nx\n", "proof line 1 is not base64"),
        (b"old 0\nAAAA\n\nx\n", "proof line 1 is not a base64 32-byte hash"),
        (b"\xff\n\n", "not UTF-8"),
    ],
)
def test_malformed_requests_are_400(served: Served, body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_add_checkpoint(body)
    answer = _post(served, 0, body)
    assert answer.status_code == 400
    assert message.split("'")[0] in answer.text


def test_too_many_proof_lines_are_refused(served: Served) -> None:
    line = base64.b64encode(bytes(32))
    body = b"old 1\n" + (line + b"\n") * 64 + b"\nx\n"
    with pytest.raises(BadRequest, match="64 proof lines, at most 63"):
        parse_add_checkpoint(body)
    assert _post(served, 0, body).status_code == 400


def test_old_size_above_the_checkpoint_is_400(
    served: Served, log: TransparencyLog
) -> None:
    log.append(*records(4))
    note = log.checkpoint()
    answer = _post(served, 0, format_add_checkpoint(9, [], note))
    assert answer.status_code == 400
    assert "checkpoint size 4 is smaller than the old size 9" in answer.text


def test_body_round_trips(log: TransparencyLog) -> None:
    log.append(*records(5))
    note = log.checkpoint()
    proof = log.consistency_proof(3, 5)
    assert parse_add_checkpoint(format_add_checkpoint(3, proof, note)) == (
        3,
        proof,
        note,
    )


def test_unreachable_witness_is_a_witness_error(
    log: TransparencyLog, signer: NoteSigner
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    witness = Witness("w.example", bytes(32), SqlWitnessState(log.engine))
    remote = RemoteWitness(f"http://127.0.0.1:{port}", witness.vkey, timeout=2)
    log.append(*records(2))
    note = log.checkpoint()
    with pytest.raises(WitnessError, match="is unreachable: ConnectError"):
        remote.add_checkpoint(note, 0, [])
    with pytest.raises(WitnessError, match="is not a cosigner key"):
        RemoteWitness("http://127.0.0.1:1", signer.vkey)
