"""The consortium as one workspace sees it: members, keys, policies, ledger.

`Consortium` is the handle every command and flow step starts from. It opens
the store, the key folder and the ledger of a workspace, and answers the
questions the steps ask: who is accredited, which policy an insurer runs,
where a status list is published, who is enrolled where.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from claims.errors import ConfigError, NotFound
from claims.keys import DEMO_PASSPHRASE, KeyStore, passphrase_from_env
from claims.policy import Policy
from claims.settings import Settings
from claims.store import (
    Enrollment,
    Member,
    PolicyRecord,
    StatusListRecord,
    Store,
    utcnow,
)
from credentials.keys import Ed25519Key
from credentials.registry import TrustedIssuers
from ledger.log import TransparencyLog
from ledger.note import NoteSigner
from ledger.witness import SqlWitnessState, Witness

__all__ = ["LEDGER_ORIGIN", "Consortium"]

logger = logging.getLogger(__name__)

LEDGER_ORIGIN = "claims.consortium.example/ledger"
"""The ledger's origin line in every checkpoint (C2SP tlog-checkpoint)."""

LEDGER_KEY = "ledger"

DEMO_MARKER = ".claims-demo"
"""A workspace holding this file was made by `claims demo` (see `claims.keys`)."""


class Consortium:
    """One workspace: its store, its members' keys and its ledger.

    Args:
        settings: where the workspace is.
        clock: "now" for every stored time and every validity check; omitted,
            the system clock in UTC.
    """

    def __init__(
        self, settings: Settings, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        self.clock = clock
        settings.workspace.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.database_url, clock=clock)
        demo = (settings.workspace / DEMO_MARKER).exists()
        self.keys = KeyStore(
            settings.keys_dir,
            passphrase_from_env(DEMO_PASSPHRASE if demo else None),
        )

    @classmethod
    def open(cls, workspace: Path | str | None = None) -> Consortium:
        return cls(Settings.load(workspace))

    # -- members ---------------------------------------------------------

    def add_member(
        self,
        member_id: str,
        kind: str,
        name: str,
        *,
        domain: str | None = None,
        accredited_from: datetime | None = None,
        accredited_until: datetime | None = None,
    ) -> tuple[Member, Ed25519Key]:
        """Add a member with a fresh key, or return the existing one unchanged."""
        key = self.keys.load_or_create(member_id)
        with self.store.session() as session:
            member = session.get(Member, member_id)
            if member is None:
                member = Member(
                    id=member_id,
                    kind=kind,
                    name=name,
                    did=key.did,
                    domain=domain,
                    accredited_from=accredited_from,
                    accredited_until=accredited_until,
                )
                session.add(member)
            elif member.kind != kind:
                raise ConfigError(
                    f"member {member_id!r} already exists as a {member.kind}"
                )
        return member, key

    def add_insurer(
        self, insurer_id: str, name: str, policy_data: Mapping[str, Any]
    ) -> Member:
        """Add an insurer running the plan `policy_data` (the TOML layout).

        The plan is checked before anything is stored (`PolicyError` names
        each bad field) and kept as JSON, dates as ISO strings.
        """
        policy = Policy.from_dict(policy_data, source=insurer_id)
        body = json.dumps(policy_data, sort_keys=True, default=_iso)
        member, _ = self.add_member(
            insurer_id, "insurer", name, domain=f"{insurer_id}.insurers.example"
        )
        with self.store.session() as session:
            record = session.get(PolicyRecord, policy.plan_id)
            if record is None:
                record = PolicyRecord(
                    id=policy.plan_id, insurer_id=insurer_id, body=body
                )
            record.body, record.insurer_id = body, insurer_id
            session.add(record)
        return member

    def add_hospital(
        self,
        hospital_id: str,
        name: str,
        *,
        accredited: bool = True,
        years: int = 5,
    ) -> Member:
        """Add a hospital; an accredited one enters the trusted-issuer registry."""
        now = self.clock()
        member, _ = self.add_member(
            hospital_id,
            "hospital",
            name,
            accredited_from=now - timedelta(days=1) if accredited else None,
            accredited_until=now + timedelta(days=365 * years) if accredited else None,
        )
        return member

    def enrol(self, insurer_id: str, claimant_did: str, since: date) -> None:
        """Record that a claimant holds a policy with an insurer from `since`."""
        with self.store.session() as session:
            if session.get(Enrollment, (insurer_id, claimant_did)) is None:
                session.add(
                    Enrollment(
                        insurer_id=insurer_id, claimant_did=claimant_did, since=since
                    )
                )

    def member(self, member_id: str) -> Member:
        with Session(self.store.engine) as session:
            member = session.get(Member, member_id)
        if member is None:
            raise NotFound(f"no member with id {member_id!r}")
        return member

    def members(self, kind: str) -> list[Member]:
        with self.store.session() as session:
            return self.store.members(session, kind)

    def key(self, member_id: str) -> Ed25519Key:
        return self.keys.load(member_id)

    def enrollment(self, insurer_id: str, claimant_did: str) -> Enrollment | None:
        with Session(self.store.engine) as session:
            return session.get(Enrollment, (insurer_id, claimant_did))

    def policy(self, insurer_id: str) -> Policy:
        with Session(self.store.engine) as session:
            record = session.exec(
                select(PolicyRecord).where(PolicyRecord.insurer_id == insurer_id)
            ).first()
        if record is None:
            raise NotFound(f"insurer {insurer_id!r} has no policy")
        return Policy.from_dict(json.loads(record.body))

    def trusted_issuers(self) -> TrustedIssuers:
        """The registry of accredited hospitals, from the member table."""
        registry = TrustedIssuers()
        for member in self.members("hospital"):
            if member.accredited_from is not None:
                registry.add(
                    member.did,
                    member.name,
                    member.accredited_from,
                    member.accredited_until,
                )
        return registry

    # -- status lists ------------------------------------------------------

    def status_list_resolver(self) -> Callable[[str], dict[str, Any]]:
        """Fetch a published status list credential by URL.

        In the embedded default, "published" means written to the workspace's
        `status/` folder; the resolver reads that file. It raises when the
        list is unknown or unreadable, which the verifier reports as
        *undetermined*, never as valid.
        """
        with Session(self.store.engine) as session:
            paths = {
                record.url: record.published_path
                for record in session.exec(select(StatusListRecord))
            }

        def resolve(url: str) -> dict[str, Any]:
            path = paths.get(url)
            if path is None:
                raise LookupError(f"status list {url} is not published")
            data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
            return data

        return resolve

    # -- ledger ------------------------------------------------------------

    @cached_property
    def ledger(self) -> TransparencyLog:
        key = self.keys.load_or_create(LEDGER_KEY)
        signer = NoteSigner(LEDGER_ORIGIN, key.seed)
        return TransparencyLog(self.store.engine, LEDGER_ORIGIN, signer)

    def witnesses(self) -> list[Witness]:
        """One witness per insurer, following the consortium ledger.

        Each witness has a key of its own (`witness-<insurer>`), separate from
        the insurer's DID key, and keeps its state in the store. In the
        embedded default they all run in this process; each would run in its
        member's own service once members are on different machines.
        """
        log_vkey = self.ledger.signer.vkey
        state = SqlWitnessState(self.store.engine)
        return [
            Witness(
                f"{insurer.domain or insurer.id}/witness",
                self.keys.load_or_create(f"witness-{insurer.id}").seed,
                state,
                logs=[log_vkey],
            )
            for insurer in self.members("insurer")
        ]

    def witness_quorum(self) -> int:
        """Cosignatures that make a checkpoint final: a majority of insurers."""
        return len(self.members("insurer")) // 2 + 1

    def ledger_vkeys(self) -> list[str]:
        """The verifier keys a receipt is checked against: the log and witnesses."""
        return [self.ledger.signer.vkey] + [w.vkey for w in self.witnesses()]

    def trust_file(self) -> dict[str, Any]:
        """What an auditor needs to check receipts offline (`--keys-file`)."""
        return {"keys": self.ledger_vkeys(), "min_cosignatures": self.witness_quorum()}

    def finalise_ledger(self) -> str:
        """Sign a checkpoint of the whole log and have the witnesses cosign it.

        Raises `ledger.errors.QuorumNotReached` (after storing what was
        collected) when fewer than `witness_quorum()` witnesses cosigned.
        """
        self.ledger.checkpoint()
        return self.ledger.cosign(self.witnesses(), self.witness_quorum())


def _iso(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not allowed in a policy")
