"""Synthetic claims at scale, shaped like the bundled FHIR data.

`Shapes.from_fhir` reads a folder of FHIR bundles (the shared Synthea data)
through `claims.fhir_intake` and keeps what a claim looks like there: its
hospitals, claim types, encounter and procedure codes, line layouts and
amounts. `populate` then fills a consortium with `count` submitted claims
drawn from those shapes:

1. three (or more) insurers with the shipped example plans, every hospital of
   the data as an accredited issuer, and `count / CLAIMS_PER_PATIENT`
   synthetic patients, each enrolled with one insurer;
2. per claim, a template treatment from the data with a fresh invoice number,
   a service date moved within the data's years, and its amounts scaled by a
   log-normal factor (codes, types and line layouts kept);
3. `duplicates` of those treatments submitted a second time, by the same
   patient, to another insurer (so exactly that many cross-insurer
   duplicates exist; no other two claims share a treatment);
4. the credentials and presentations signed in batches, spread over worker
   processes, and the claims inserted in bulk as `submitted`, exactly as
   `claims.submission.receive` stores them; status lists published last.

Everything is streamed in chunks of `CHUNK` claims, so memory does not grow
with `count`. The output is deterministic for a seed, except for the random
parts of signatures' inputs (credential ids, challenges, status indexes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import secrets
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NamedTuple

import rfc8785
import sqlalchemy as sa

from claims.consortium import Consortium
from claims.errors import ConfigError
from claims.fhir_intake import load_directory
from claims.hospital import (
    CREDENTIAL_VALIDITY,
    PURPOSE,
    _status_list,
    publish_status_list,
    status_list_url,
)
from claims.states import ClaimState
from claims.store import (
    Challenge,
    Claim,
    ClaimEvent,
    Enrollment,
    Member,
    StatusIndex,
    utcnow,
)
from claims.submission import CHALLENGE_TTL
from claims.treatment import Treatment
from credentials.holder import present
from credentials.issuer import issue_credential
from credentials.keys import Ed25519Key
from credentials.status_list import StatusList, status_entry

__all__ = ["CHUNK", "Shapes", "SynthReport", "populate"]

logger = logging.getLogger(__name__)

CHUNK = 2000
"""Claims signed and inserted together."""

CLAIMS_PER_PATIENT = 8
"""About how many claims each synthetic patient makes."""

_STATUS_LENGTH = StatusList.new().length
"""Entries of a new status list: the random indexes are drawn below this."""

AMOUNT_SIGMA = 0.35
"""Spread of the log-normal factor applied to every line amount."""


@dataclass(frozen=True)
class Shapes:
    """What the claims of a FHIR data set look like, as templates."""

    templates: tuple[Treatment, ...]
    hospitals: dict[str, str]
    """Hospital id -> name."""
    years: tuple[int, int]
    """First and last service year seen."""

    @classmethod
    def from_fhir(cls, folder: Path) -> Shapes:
        """Read every bundle of `folder`; raises `ConfigError` if none has a claim."""
        intake = load_directory(folder)
        templates = tuple(treatment for _, treatment in intake.treatments)
        if not templates:
            raise ConfigError(f"no FHIR Claims found in {folder}")
        hospitals = {org.id: org.name for org in intake.organizations.values()}
        for treatment in templates:
            hospitals.setdefault(treatment.provider, treatment.provider_name)
        years = sorted(int(t.service_date[:4]) for t in templates)
        return cls(templates, hospitals, (years[0], years[-1]))


@dataclass
class SynthReport:
    """What `populate` made."""

    claims: int
    duplicates: int
    """Cross-insurer duplicates: second claims of an already claimed treatment."""
    duplicate_pairs: list[tuple[str, str]]
    """(first claim id, second claim id) of each duplicate."""
    patients: int
    insurers: list[str]


def _vary(template: Treatment, number: int, seed: int, rng: random.Random) -> Treatment:
    """A new treatment from a template: fresh ids, moved date, scaled amounts."""
    factor = Decimal(str(round(math.exp(rng.gauss(0.0, AMOUNT_SIGMA)), 3)))
    lines = tuple(
        replace(line, amount=(line.amount * factor).quantize(Decimal("0.01")))
        for line in template.lines
    )
    shift = timedelta(days=rng.randrange(-365, 365))
    start = (date.fromisoformat(template.service_date) + shift).isoformat()
    rest = template.start[10:]
    end_rest = template.end[10:] if template.end else rest
    return replace(
        template,
        invoice=f"synth-{seed}-{number}",
        encounter=f"synth-encounter-{seed}-{number}",
        patient_ref=f"synth-patient-{number}",
        start=start + rest,
        end=start + end_rest,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal("0")),
    )


def _patient_key(seed: int, number: int) -> Ed25519Key:
    return Ed25519Key.from_seed(
        hashlib.sha256(f"claims.synth/{seed}/patient/{number}".encode()).digest()
    )


@dataclass(frozen=True)
class _Job:
    """One claim to sign, as plain data a worker process can take."""

    hospital_seed: bytes
    holder_seed: bytes
    credential_id: str
    subject: dict[str, Any]
    status: dict[str, Any]
    challenge: str
    domain: str
    credential: dict[str, Any] | None = None
    """An already signed credential (a duplicate's second submission)."""


_KEYS: dict[bytes, Ed25519Key] = {}


def _key(seed: bytes) -> Ed25519Key:
    key = _KEYS.get(seed)
    if key is None:
        key = _KEYS[seed] = Ed25519Key.from_seed(seed)
    return key


def _sign(jobs: list[_Job]) -> list[tuple[dict[str, Any], str, str]]:
    """Credential, submission JSON and submission hash of each job."""
    now = utcnow()
    out: list[tuple[dict[str, Any], str, str]] = []
    for job in jobs:
        credential = job.credential or issue_credential(
            _key(job.hospital_seed),
            credential_id=job.credential_id,
            subject=job.subject,
            valid_from=now,
            valid_until=now + CREDENTIAL_VALIDITY,
            status=job.status,
        )
        presentation = present(
            [credential],
            _key(job.holder_seed),
            challenge=job.challenge,
            domain=job.domain,
            created=now,
        )
        submission: dict[str, Any] = {
            "challenge": job.challenge,
            "presentation": presentation,
            "consent": {"jointFraudCheck": True},
        }
        digest = hashlib.sha256(rfc8785.dumps(submission)).hexdigest()
        out.append((credential, json.dumps(submission, separators=(",", ":")), digest))
    return out


def _pieces(items: list[_Job], parts: int) -> list[list[_Job]]:
    size = max(1, math.ceil(len(items) / parts))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _insert(conn: sa.Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(model.__table__), rows)


def populate(
    consortium: Consortium,
    shapes: Shapes,
    count: int,
    *,
    duplicates: int = 0,
    insurers: int = 3,
    seed: int = 7,
    workers: int | None = None,
    progress: Callable[[str], None] = lambda _message: None,
) -> SynthReport:
    """Fill an empty consortium with `count` submitted claims shaped like `shapes`.

    `duplicates` of the `count` claims are second submissions of an earlier
    claim's treatment at another insurer. `workers` processes sign (default:
    the machine's CPUs; 1 signs in this process).
    """
    if not 0 <= duplicates <= count // 2:
        raise ConfigError("duplicates must be between 0 and half the claim count")
    if insurers < 3:
        raise ConfigError("the joint check needs at least 3 insurers")
    from claims.demo import example_policy

    rng = random.Random(seed)
    names = [f"insurer-{i}" for i in range(1, insurers + 1)]
    for number, insurer in enumerate(names, start=1):
        consortium.add_insurer(insurer, f"Insurer {number}", example_policy(number))
    domains = {m.id: m.domain or "" for m in consortium.members("insurer")}
    hospitals = sorted(shapes.hospitals)
    for hospital_id in hospitals:
        consortium.add_hospital(hospital_id, shapes.hospitals[hospital_id] or "-")
        _status_list(consortium, hospital_id)
    hospital_seeds = {h: consortium.key(h).seed for h in hospitals}
    by_hospital: dict[str, list[Treatment]] = {}
    for template in shapes.templates:
        by_hospital.setdefault(template.provider, []).append(template)

    # 1. Patients, each enrolled with a home insurer well before any service.
    patients = max(1, count // CLAIMS_PER_PATIENT)
    home = [names[rng.randrange(len(names))] for _ in range(patients)]
    since = date(shapes.years[0] - 2, 1, 1)
    engine = consortium.store.engine
    for start in range(0, patients, CHUNK):
        members, enrolments = [], []
        for number in range(start, min(start + CHUNK, patients)):
            did = _patient_key(seed, number).did
            members.append(
                {
                    "id": f"synth-patient-{seed}-{number}",
                    "kind": "claimant",
                    "name": f"patient {number}",
                    "did": did,
                    "created_at": utcnow(),
                }
            )
            enrolments.append(
                {"insurer_id": home[number], "claimant_did": did, "since": since}
            )
        with engine.begin() as conn:
            _insert(conn, Member, members)
            _insert(conn, Enrollment, enrolments)
    progress(f"{len(names)} insurers, {len(hospitals)} hospitals, {patients} patients")

    # 2-4. Claims, chunk by chunk; duplicates re-submit claims of the chunk.
    firsts = count - duplicates
    status_used: dict[str, set[int]] = {h: set() for h in hospitals}
    pool = _pool(workers)
    pairs: list[tuple[str, str]] = []
    made = 0
    extra_enrolments: set[tuple[str, str]] = set()
    try:
        for chunk_start in range(0, firsts, CHUNK):
            chunk_end = min(chunk_start + CHUNK, firsts)
            # Spread duplicates evenly: this chunk's share of them.
            dup_here = (chunk_end * duplicates) // firsts - (
                chunk_start * duplicates
            ) // firsts
            made += _chunk(
                consortium,
                pool,
                range(chunk_start, chunk_end),
                dup_here,
                rng=rng,
                seed=seed,
                shapes=shapes,
                by_hospital=by_hospital,
                hospital_seeds=hospital_seeds,
                home=home,
                names=names,
                domains=domains,
                status_used=status_used,
                pairs=pairs,
                extra_enrolments=extra_enrolments,
            )
            progress(f"submitted {made} claims")
    finally:
        if pool is not None:
            pool.executor.shutdown()
    for hospital_id in hospitals:
        publish_status_list(consortium, hospital_id)
    return SynthReport(made, len(pairs), pairs, patients, names)


class _Pool(NamedTuple):
    """Processes that sign credentials, and how many there are."""

    executor: ProcessPoolExecutor
    size: int


def _pool(workers: int | None) -> _Pool | None:
    count = workers if workers is not None else (os.cpu_count() or 1)
    if count <= 1:
        return None
    return _Pool(
        ProcessPoolExecutor(max_workers=count, mp_context=get_context("fork")), count
    )


def _signed(
    pool: _Pool | None, jobs: list[_Job]
) -> Iterator[tuple[dict[str, Any], str, str]]:
    if pool is None:
        yield from _sign(jobs)
        return
    for result in pool.executor.map(_sign, _pieces(jobs, pool.size)):
        yield from result


def _chunk(
    consortium: Consortium,
    pool: _Pool | None,
    numbers: range,
    duplicates: int,
    *,
    rng: random.Random,
    seed: int,
    shapes: Shapes,
    by_hospital: dict[str, list[Treatment]],
    hospital_seeds: dict[str, bytes],
    home: list[str],
    names: list[str],
    domains: dict[str, str],
    status_used: dict[str, set[int]],
    pairs: list[tuple[str, str]],
    extra_enrolments: set[tuple[str, str]],
) -> int:
    """Sign and insert the claims `numbers` and `duplicates` second copies."""
    jobs: list[_Job] = []
    owners: list[tuple[str, int]] = []  # (insurer, patient) of each job
    for number in numbers:
        template = shapes.templates[rng.randrange(len(shapes.templates))]
        hospital = template.provider
        treatment = _vary(template, number, seed, rng)
        patient = rng.randrange(len(home))
        used = status_used[hospital]
        if len(used) >= _STATUS_LENGTH // 2:
            raise ConfigError(f"hospital {hospital} has used half its status list")
        index = secrets.randbelow(_STATUS_LENGTH)
        while index in used:
            index = secrets.randbelow(_STATUS_LENGTH)
        used.add(index)
        jobs.append(
            _Job(
                hospital_seed=hospital_seeds[hospital],
                holder_seed=_patient_key(seed, patient).seed,
                credential_id=f"urn:uuid:{uuid.uuid4()}",
                subject={
                    "id": _patient_key(seed, patient).did,
                    "treatment": treatment.to_subject(),
                },
                status=status_entry(status_list_url(hospital), index, PURPOSE),
                challenge=secrets.token_urlsafe(24),
                domain=domains[home[patient]],
            )
        )
        owners.append((home[patient], patient))
    signed = list(_signed(pool, jobs))

    # Duplicates: the same credential presented again at another insurer.
    picks = rng.sample(range(len(jobs)), duplicates)
    dup_jobs: list[_Job] = []
    for pick in picks:
        insurer, patient = owners[pick]
        elsewhere = [name for name in names if name != insurer]
        other = elsewhere[rng.randrange(len(elsewhere))]
        dup_jobs.append(
            replace(
                jobs[pick],
                challenge=secrets.token_urlsafe(24),
                domain=domains[other],
                credential=signed[pick][0],
            )
        )
        owners.append((other, patient))
    signed.extend(_signed(pool, dup_jobs))
    all_jobs = jobs + dup_jobs

    now = utcnow()
    ids = [str(uuid.uuid4()) for _ in all_jobs]
    challenges, claims, events, statuses, enrolments = [], [], [], [], []
    for claim_id, job, (insurer, _), (credential, text, digest) in zip(
        ids, all_jobs, owners, signed, strict=True
    ):
        challenges.append(
            {
                "nonce": job.challenge,
                "insurer_id": insurer,
                "issued_at": now,
                "expires_at": now + CHALLENGE_TTL,
                "used_at": now,
            }
        )
        claims.append(
            {
                "id": claim_id,
                "insurer_id": insurer,
                "state": ClaimState.SUBMITTED.value,
                "claimant_did": job.subject["id"],
                "challenge": job.challenge,
                "submission": text,
                "submission_hash": digest,
                "submitted_at": now,
                "updated_at": now,
            }
        )
        events.append(
            {
                "claim_id": claim_id,
                "state": ClaimState.SUBMITTED.value,
                "at": now,
            }
        )
        if job.credential is None:
            index = int(job.status["statusListIndex"])
            statuses.append(
                {
                    "url": job.status["statusListCredential"],
                    "index": index,
                    "credential_id": credential["id"],
                }
            )
        elif (insurer, job.subject["id"]) not in extra_enrolments:
            extra_enrolments.add((insurer, job.subject["id"]))
            enrolments.append(
                {
                    "insurer_id": insurer,
                    "claimant_did": job.subject["id"],
                    "since": date(2000, 1, 1),
                }
            )
    for pick, second in zip(picks, ids[len(jobs) :], strict=True):
        pairs.append((ids[pick], second))
    with consortium.store.engine.begin() as conn:
        _insert(conn, Challenge, challenges)
        _insert(conn, Claim, claims)
        _insert(conn, ClaimEvent, events)
        _insert(conn, StatusIndex, statuses)
        if enrolments:
            _insert(conn, Enrollment, _missing(conn, enrolments))
    return len(all_jobs)


def _missing(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The enrolments among `rows` that are not stored yet."""
    table = Enrollment.__table__  # type: ignore[attr-defined]
    found = set()
    for row in rows:
        hit = conn.execute(
            sa.select(table.c.insurer_id).where(
                table.c.insurer_id == row["insurer_id"],
                table.c.claimant_did == row["claimant_did"],
            )
        ).first()
        if hit is not None:
            found.add((row["insurer_id"], row["claimant_did"]))
    return [r for r in rows if (r["insurer_id"], r["claimant_did"]) not in found]
