"""The hospital's desk: treatment credentials, status lists, revocation.

A hospital turns each FHIR Claim of its own data into a `TreatmentCredential`
(VC Data Model 2.0, Data Integrity `eddsa-jcs-2022`), gives every credential
a random index in its Bitstring Status List, and publishes the signed list.
In the embedded default, publishing means writing the status list credential
into the workspace's `status/` folder at the path its URL maps to.
"""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlmodel import select

from claims.consortium import Consortium
from claims.errors import ClaimsError, NotFound
from claims.fhir_intake import IntakeError, read_bundle
from claims.store import StatusIndex, StatusListRecord
from claims.treatment import Treatment
from credentials.issuer import issue_credential
from credentials.status_list import StatusList, status_entry, status_list_credential

__all__ = [
    "CREDENTIAL_VALIDITY",
    "find_treatment",
    "issuing_hospital",
    "issue_treatment_credential",
    "publish_status_list",
    "revoke",
    "status_list_url",
]

logger = logging.getLogger(__name__)

_REFUSALS_SHOWN = 10
"""How many refused Claims `find_treatment` lists before `and N more`."""

CREDENTIAL_VALIDITY = timedelta(days=365)
"""How long a treatment credential may be presented after issue."""

PURPOSE = "revocation"


def status_list_url(hospital_id: str) -> str:
    return f"https://{hospital_id}.hospitals.example/status/1"


def _status_list(consortium: Consortium, hospital_id: str) -> StatusListRecord:
    """The hospital's revocation list, created empty the first time."""
    url = status_list_url(hospital_id)
    with consortium.store.session() as session:
        record = session.get(StatusListRecord, url)
        if record is None:
            record = StatusListRecord(
                url=url,
                hospital_id=hospital_id,
                purpose=PURPOSE,
                encoded=StatusList.new().encode(),
            )
            session.add(record)
    return record


def issue_treatment_credential(
    consortium: Consortium,
    hospital_id: str,
    treatment: Treatment,
    subject_did: str,
) -> dict[str, Any]:
    """Sign a treatment credential for the patient whose wallet is `subject_did`.

    The credential's status entry points at a random, never reused index of
    the hospital's revocation list, so that neighbouring indexes say nothing
    about each other.
    """
    key = consortium.key(hospital_id)
    record = _status_list(consortium, hospital_id)
    credential_id = f"urn:uuid:{uuid.uuid4()}"
    size = StatusList.decode(record.encoded).length
    with consortium.store.session() as session:
        while True:
            index = secrets.randbelow(size)
            if session.get(StatusIndex, (record.url, index)) is None:
                break
        session.add(
            StatusIndex(url=record.url, index=index, credential_id=credential_id)
        )
    now = consortium.clock()
    return issue_credential(
        key,
        credential_id=credential_id,
        subject={"id": subject_did, "treatment": treatment.to_subject()},
        valid_from=now,
        valid_until=now + CREDENTIAL_VALIDITY,
        status=status_entry(record.url, index, PURPOSE),
    )


def revoke(consortium: Consortium, hospital_id: str, credential_id: str) -> int:
    """Set the revocation bit of a credential and republish the list.

    Returns the status index that was set. Raises `NotFound` when the
    hospital never issued that credential.
    """
    url = status_list_url(hospital_id)
    with consortium.store.session() as session:
        allocation = session.exec(
            select(StatusIndex).where(
                StatusIndex.url == url, StatusIndex.credential_id == credential_id
            )
        ).first()
        if allocation is None:
            raise NotFound(
                f"hospital {hospital_id} issued no credential {credential_id}"
            )
        record = session.get(StatusListRecord, url)
        if record is None:
            raise ClaimsError(f"status list {url} is missing from the store")
        bits = StatusList.decode(record.encoded)
        bits.set(allocation.index, True)
        record.encoded = bits.encode()
        session.add(record)
    publish_status_list(consortium, hospital_id)
    logger.debug("hospital %s revoked status index %s", hospital_id, allocation.index)
    return allocation.index


def publish_status_list(consortium: Consortium, hospital_id: str) -> Path:
    """Sign the hospital's status list credential and publish it.

    Returns the file it was written to (atomically: a reader never sees half
    a list).
    """
    record = _status_list(consortium, hospital_id)
    key = consortium.key(hospital_id)
    document = status_list_credential(
        key,
        record.url,
        StatusList.decode(record.encoded),
        record.purpose,
        consortium.clock(),
    )
    folder = consortium.settings.status_dir / hospital_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "1.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2), encoding="utf-8")
    tmp.replace(path)
    with consortium.store.session() as session:
        stored = session.get(StatusListRecord, record.url)
        assert stored is not None  # created by _status_list above
        stored.published_path = str(path)
        session.add(stored)
    return path


def find_treatment(
    bundle: Path, *, encounter: str | None = None, claim: str | None = None
) -> Treatment:
    """The treatment of one FHIR Claim in a bundle file, by encounter or claim id.

    Raises `claims.fhir_intake.IntakeError` for a bundle that cannot be read
    or when the Claim named by `claim` was refused at intake (the message
    lists every field at fault), and `NotFound` when no Claim (or more than
    one, for an encounter billed by several) matches; that message lists
    each Claim of the bundle refused at intake, with why.
    """
    if (encounter is None) == (claim is None):
        raise ClaimsError("name exactly one of an encounter id and a claim id")
    contents = read_bundle(bundle)
    matches = [
        treatment
        for _, treatment in contents.treatments
        if (claim is not None and treatment.invoice == claim)
        or (encounter is not None and treatment.encounter == encounter)
    ]
    what = f"claim {claim}" if claim is not None else f"encounter {encounter}"
    if not matches:
        for refused in contents.refused:
            if claim is not None and refused.claim_id == claim:
                raise IntakeError(
                    f"{bundle.name}: Claim/{claim} was refused at intake:"
                    f" {refused.reason}",
                    remedy="correct those fields of the Claim, then issue again",
                )
        message = f"{bundle.name} holds no usable FHIR Claim for {what}"
        if contents.refused:
            shown = contents.refused[:_REFUSALS_SHOWN]
            more = len(contents.refused) - len(shown)
            message += (
                f"; {len(contents.refused)} claim(s) of the bundle were refused"
                " at intake:"
                + "".join(f"\n  {refused}" for refused in shown)
                + (f"\n  and {more} more" if more else "")
            )
        raise NotFound(
            message,
            remedy="check the id against the bundle's Encounter and Claim ids",
        )
    if len(matches) > 1:
        raise NotFound(
            f"{bundle.name} has {len(matches)} Claims for {what}",
            remedy="name one of them with --claim: "
            + ", ".join(t.invoice for t in matches),
        )
    return matches[0]


def issuing_hospital(consortium: Consortium, credential_id: str) -> str:
    """The hospital whose status list holds `credential_id`; `NotFound` if none."""
    with consortium.store.session() as session:
        allocation = session.exec(
            select(StatusIndex).where(StatusIndex.credential_id == credential_id)
        ).first()
        record = (
            None
            if allocation is None
            else session.get(StatusListRecord, allocation.url)
        )
        hospital_id = None if record is None else record.hospital_id
    if hospital_id is None:
        raise NotFound(
            f"no hospital of this workspace issued credential {credential_id}"
        )
    return hospital_id
