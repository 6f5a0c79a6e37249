"""Shared builders for the mpc_lite tests: members with claims, party services."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import uvicorn
from fastapi import FastAPI
from nacl.signing import SigningKey

from mpc_lite.fraud import ClaimInput, Member
from mpc_lite.keys import claimant_key, treatment_key
from mpc_lite.service import PartyNode, party_router


def claim(
    claim_id: str,
    patient: str,
    invoice: str,
    service_date: str,
    amount: int = 100,
    hospital: str = "did:key:zH1",
    *,
    fraud_flag: bool = False,
) -> ClaimInput:
    return ClaimInput(
        claim_id=claim_id,
        treatment=treatment_key(hospital, invoice, service_date, ["cpt|99213"]),
        claimant=claimant_key(patient),
        hospital=hospital,
        service_date=service_date,
        amount=Decimal(amount),
        fraud_flag=fraud_flag,
    )


def consortium() -> list[Member]:
    """Three insurers; `ann` is held by all three, `bob` by two, `cat` by one.

    Claim a2 (insurer a) is the same treatment as b1 (insurer b).
    """
    a = [
        claim("a1", "MRN-ann", "INV-1", "2024-03-01", 1000),
        claim("a2", "MRN-ann", "INV-2", "2024-05-01", 2000, "did:key:zH2"),
        claim("a3", "MRN-bob", "INV-3", "2024-05-02", 300),
        claim("a4", "MRN-cat", "INV-4", "2024-05-03", 50),
        claim("a0", "MRN-ann", "INV-0", "2021-01-01", 99, fraud_flag=True),
    ]
    b = [
        claim("b1", "MRN-ann", "INV-2", "2024-05-01", 2000, "did:key:zH2"),
        claim("b2", "MRN-bob", "INV-5", "2024-04-01", 700),
        claim("b3", "MRN-ann", "INV-6", "2022-01-01", 10, "did:key:zH3"),
    ]
    c = [claim("c1", "MRN-ann", "INV-7", "2024-01-15", 400, "did:key:zH3")]
    return [
        Member(name, SigningKey(bytes([i + 1]) * 32), rows)
        for i, (name, rows) in enumerate([("a", a), ("b", b), ("c", c)])
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    """One party service under uvicorn in a thread, on a 127.0.0.1 port."""

    def __init__(self, node_for_port: PartyNode, port: int) -> None:
        self.port = port
        self.node = node_for_port
        app = FastAPI()
        app.include_router(party_router(node_for_port))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> Service:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("party service did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.node.close()


class Services:
    """Three party services for `consortium()`; `restart(name)` brings one back."""

    def __init__(self) -> None:
        self.members = {m.name: m for m in consortium()}
        self.ports = {name: free_port() for name in self.members}
        self.endpoints = {
            name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()
        }
        self.roster = {
            name: bytes(m.signing_key.verify_key) for name, m in self.members.items()
        }
        self.running = {name: self._service(name).start() for name in self.members}

    def _service(self, name: str) -> Service:
        member = self.members[name]
        node = PartyNode(
            name,
            member.signing_key,
            self.roster,
            self.endpoints,
            member.holdings,
        )
        return Service(node, self.ports[name])

    def stop(self, name: str) -> None:
        self.running.pop(name).stop()

    def restart(self, name: str) -> None:
        self.running[name] = self._service(name).start()

    def close(self) -> None:
        for name in list(self.running):
            self.stop(name)


@pytest.fixture
def services() -> Iterator[Services]:
    running = Services()
    try:
        yield running
    finally:
        running.close()
