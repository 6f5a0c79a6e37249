"""The consortium as one workspace sees it: members, keys, policies, ledger.

`Consortium` is the handle every command and flow step starts from. It opens
the store, the key folder and the ledger of a workspace, and answers the
questions the steps ask: who is accredited, which policy an insurer runs,
where a status list is published, who is enrolled where.

Keys come from the workspace's `keys/` folder through one method, `_key`,
which makes a key only while nothing signed with it can exist yet: a
member's key when the member is added, the ledger's log and witness keys
until the ledger has an entry or a checkpoint. After that a missing key file
is refused (`claims.keys.MissingKey`) and nothing is written, so a workspace
given the wrong keys folder never signs with keys nobody trusts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from claims.errors import ConfigError, NotFound
from claims.keys import DEMO_PASSPHRASE, KeyStore, MissingKey, passphrase_from_env
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
from ledger._tables import LedgerCheckpoint, LedgerLog
from ledger.log import TransparencyLog
from ledger.note import NoteSigner
from ledger.witness import SqlWitnessState, Witness

__all__ = ["LEDGER_ORIGIN", "Consortium"]

logger = logging.getLogger(__name__)

LEDGER_ORIGIN = "claims.consortium.example/ledger"
"""The ledger's origin line in every checkpoint (C2SP tlog-checkpoint)."""

LEDGER_KEY = "ledger"

_log_t: sa.Table = LedgerLog.__table__  # type: ignore[attr-defined]
_checkpoint_t: sa.Table = LedgerCheckpoint.__table__  # type: ignore[attr-defined]

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
        self._ledger_in_use = False

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
        """Add a member with a fresh key, or return the existing one unchanged.

        An insurer also gets its witness key. The key of a member already in
        the store is never made again: `MissingKey` when its file is gone, and
        `ConfigError` when the file holds another key than the member's DID.
        """
        with Session(self.store.engine) as session:
            stored = session.get(Member, member_id)
        if stored is not None and stored.kind != kind:
            raise ConfigError(f"member {member_id!r} already exists as a {stored.kind}")
        key = self._key(member_id, may_create=stored is None)
        if stored is not None and stored.did != key.did:
            raise ConfigError(
                f"key file {self.keys.folder / member_id}.key holds another key"
                f" than member {member_id!r}; the keys folder must be the one the"
                " workspace was made with"
            )
        if kind == "insurer":
            self._key(
                _witness_key(member_id),
                may_create=stored is None or not self._ledger_started(),
            )
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
        """The key of a member; never made here (`add_member` makes it).

        Raises `NotFound` when `member_id` is no member, and `MissingKey` when
        the member's key file is not in the keys folder.
        """
        try:
            return self._key(member_id, may_create=False)
        except MissingKey:
            self.member(member_id)
            raise

    def _key(self, name: str, *, may_create: bool) -> Ed25519Key:
        """The workspace key `name`, made first only when `may_create`.

        Every key of the consortium is obtained here. The callers pass
        `may_create` only while nothing can have been signed with the key
        (module docstring); otherwise a missing file raises `MissingKey`
        before the passphrase is asked for or anything is written.
        """
        if may_create:
            return self.keys.load_or_create(name)
        return self.keys.load(name)

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

    def _ledger_started(self) -> bool:
        """Whether the ledger has an entry or a checkpoint: its keys are in use.

        Read from the store until it is true (it never becomes false again).
        """
        # NOTE: reads the ledger's tables directly; `ledger.log` offers no
        # query that needs no signer, and the signer is what is decided here.
        if self._ledger_in_use:
            return True
        engine = self.store.engine
        if not sa.inspect(engine).has_table(_log_t.name):
            return False
        with engine.connect() as conn:
            log = conn.execute(
                sa.select(_log_t.c.id, _log_t.c.size).where(
                    _log_t.c.origin == LEDGER_ORIGIN
                )
            ).first()
            started = log is not None and (
                log.size > 0
                or conn.execute(
                    sa.select(_checkpoint_t.c.size)
                    .where(_checkpoint_t.c.log_id == log.id)
                    .limit(1)
                ).first()
                is not None
            )
        self._ledger_in_use = started
        return started

    @cached_property
    def ledger(self) -> TransparencyLog:
        """The consortium ledger, signed with the workspace's `ledger` key.

        Raises `MissingKey` when the ledger has entries or checkpoints and
        that key's file is not in the keys folder.
        """
        key = self._key(LEDGER_KEY, may_create=not self._ledger_started())
        signer = NoteSigner(LEDGER_ORIGIN, key.seed)
        return TransparencyLog(self.store.engine, LEDGER_ORIGIN, signer)

    def witnesses(self) -> list[Witness]:
        """One witness per insurer, following the consortium ledger.

        Each witness has a key of its own (`witness-<insurer>`), separate from
        the insurer's DID key, and keeps its state in the store. In the
        embedded default they all run in this process; each would run in its
        member's own service once members are on different machines.

        Raises `MissingKey` when the ledger has entries or checkpoints and a
        witness key file is not in the keys folder.
        """
        log_vkey = self.ledger.signer.vkey
        may_create = not self._ledger_started()
        state = SqlWitnessState(self.store.engine)
        return [
            Witness(
                f"{insurer.domain or insurer.id}/witness",
                self._key(_witness_key(insurer.id), may_create=may_create).seed,
                state,
                logs=[log_vkey],
            )
            for insurer in self.members("insurer")
        ]

    def check_keys(self, member_id: str | None = None) -> None:
        """Open the keys a command will sign with, before it changes anything.

        The ledger's log key, every witness key and, when given, the key of
        `member_id`. Raises `MissingKey` for a key file that must exist and
        does not, `NotFound` for an unknown member, and `ConfigError` when the
        passphrase does not open the keys. Keys the ledger does not use yet
        are made, as their first use would.
        """
        if member_id is not None:
            self.key(member_id)
        self.witnesses()  # opens the ledger first

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


def _witness_key(insurer_id: str) -> str:
    """The name of an insurer's witness key in the keys folder."""
    return f"witness-{insurer_id}"


def _iso(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not allowed in a policy")
