"""`claims demo`: a whole consortium, end to end, on a folder of FHIR bundles.

1. Read every bundle in the folder; a bundle that does not parse is reported
   by file name and skipped.
2. Set up the consortium: N insurers with the shipped example policies, every
   hospital found in the data as an accredited issuer, a wallet per patient.
   Each claim goes to the insurer whose plan its FHIR Claim names as focal
   coverage (`Claim.insurance`), when that is one of the shipped plans;
   otherwise to one insurer picked from the patient's id. A patient holds a
   policy with every insurer their claims go to.
3. Each FHIR Claim becomes a treatment credential issued by its hospital.
4. Each patient submits each credential to its insurer; then `duplicates`
   treatments are submitted a second time to another insurer (the claimant
   holds a policy there too), and four hostile submissions are added: a
   tampered credential, one from a hospital outside the consortium, one
   presented with the wrong challenge, and one the hospital has revoked.
5. The Prefect flow takes every submitted claim through intake, verify,
   the joint check (duplicates, and a risk score for a claimant whom at
   least three insurers hold), adjudication and settlement.
6. The summary, and one ledger receipt per settled claim, are written out.

The output folder (`--out`) is checked in step 1, before any bundle is read:
the demo writes into a new or empty folder, or one an earlier demo wrote (it
holds `OUT_MARKER`, which lists the files that demo wrote). It replaces only
those files; any other file there is left as it is, and one in the way of a
file the demo writes refuses the run. An output folder written before the
marker existed is refused like any other: remove it once.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import shutil
import statistics
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from claims.consortium import DEMO_MARKER, Consortium
from claims.errors import ConfigError, NotFound
from claims.fhir_intake import load_directory
from claims.hospital import issue_treatment_credential, publish_status_list, revoke
from claims.settings import Settings
from claims.states import ClaimState
from claims.store import Claim
from claims.submission import issue_challenge, make_submission, receive
from claims.treatment import Treatment
from credentials.errors import MalformedDocument
from credentials.parse import load_user_json, read_user_file

__all__ = ["OUT_MARKER", "DemoOptions", "example_bundles", "run_demo"]

logger = logging.getLogger(__name__)

OUTSIDER = "outside-clinic"

OUT_MARKER = ".claims-demo-out"
"""The file in an output folder that says `claims demo` wrote it, and what.

JSON: `{"made_by": "claims demo", "files": [...]}`, the files as paths
relative to the folder.
"""
_SUMMARY = "summary.json"
_KEYS = "ledger-keys.json"
_RECEIPTS = "receipts"
# The only paths a marker may list: what `_write_outputs` writes.
_OWNED = re.compile(
    r"(summary|ledger-keys)\.json|receipts/[A-Za-z0-9][\w.-]{0,127}\.json"
)


def example_bundles() -> Path:
    """The small FHIR R4 bundles shipped with the project."""
    return Path(str(resources.files("claims") / "examples" / "bundles"))


def _shipped_plan(index: int) -> dict[str, Any]:
    name = f"insurer-{(index - 1) % 3 + 1}.toml"
    text = (resources.files("claims") / "examples" / name).read_text(encoding="utf-8")
    return tomllib.loads(text)


def example_policy(index: int) -> dict[str, Any]:
    """The shipped plan of the `index`-th insurer (1-based), cycling over three."""
    data = _shipped_plan(index)
    data["insurer"] = f"Insurer {index}"
    data["plan_id"] = f"insurer-{index}-{data['plan_id']}"
    return data


@dataclass
class DemoOptions:
    """What `claims demo` was asked to do."""

    fhir: Path | None = None
    out: Path = Path("demo-out")
    workspace: Path | None = None
    insurers: int = 3
    duplicates: int = 5
    hostile: bool = True
    """Add the four hostile submissions (tampered, outsider, challenge, revoked)."""
    prefect: bool = True
    """Run the steps as a Prefect flow; off, the same steps run inline."""
    seed: int = 7
    progress: Callable[[str], None] = field(default=lambda _message: None)


@contextmanager
def _fresh_workspace(options: DemoOptions) -> Iterator[Settings]:
    """A clean workspace for the demo, held by this run alone until it ends.

    Never one that holds other data. Another `claims demo` on the same
    folder would empty it under this one (its keys half written read as "wrong
    passphrase"); it is refused instead, by a lock on the folder itself, which
    is why the folder is emptied and not removed.
    """
    settings = Settings.load(options.workspace)
    folder = settings.workspace
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"workspace {folder} is a file, not a folder",
            remedy="choose a folder: `claims --workspace DIR demo`",
        )
    if settings.database_url.startswith("sqlite:") and not str(
        settings.database_url
    ).startswith(f"sqlite:///{folder}"):
        raise ConfigError(
            "the demo only resets a SQLite store inside its own workspace",
            remedy="unset CLAIMS_DATABASE_URL to run the demo",
        )
    with _alone(folder, f"workspace {folder}", "`claims --workspace DIR demo`"):
        contents = list(folder.iterdir())
        if contents and not (folder / DEMO_MARKER).exists():
            raise ConfigError(
                f"workspace {folder} already holds data that is not a demo's",
                remedy="choose another folder: `claims --workspace DIR demo`",
            )
        for path in contents:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        (folder / DEMO_MARKER).write_text("made by `claims demo`\n", encoding="utf-8")
        yield settings


@contextmanager
def _alone(folder: Path, what: str, elsewhere: str) -> Iterator[None]:
    """Hold `folder` (made if missing) against every other `claims demo`.

    An exclusive `flock` on the folder itself, released when the block ends
    or the process dies; `what` and `elsewhere` word the refusal.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{what} is in use by another `claims demo`",
                remedy=f"wait for it to end, or choose another folder: {elsewhere}",
            ) from None
        yield
    finally:
        os.close(handle)


def _owned_outputs(out: Path) -> set[str]:
    """The files of `out` an earlier demo wrote; refuses any other use of `out`.

    Raises `ConfigError` when `out` (or the nearest part of its path that
    exists) is a file, or when `out` holds files and no readable
    `OUT_MARKER`, or holds a summary, keys file or receipts folder that the
    marker does not list. Nothing is written.
    """
    remedy = "give a new or empty folder: `claims demo --out DIR`"
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = f"--out {out} is" if existing == out else f"{existing} (in --out) is"
        raise ConfigError(f"{where} a file, not a folder", remedy=remedy)
    if existing != out or not any(out.iterdir()):
        return set()

    # 1. A folder with files: an earlier demo's, by its marker.
    marker = out / OUT_MARKER
    if not marker.is_file():
        raise ConfigError(
            f"--out folder {out} holds files that `claims demo` did not write",
            remedy=f"{remedy}; the demo replaces only a folder it wrote",
        )
    try:
        data = load_user_json(marker.read_bytes(), what=OUT_MARKER)
        files = data["files"] if isinstance(data, dict) else None
    except (OSError, MalformedDocument, KeyError) as exc:
        raise ConfigError(
            f"--out folder {out}: its {OUT_MARKER} cannot be read", remedy=remedy
        ) from exc
    if not isinstance(files, list) or not all(
        isinstance(name, str) and _OWNED.fullmatch(name) for name in files
    ):
        raise ConfigError(
            f"--out folder {out}: its {OUT_MARKER} lists files the demo does not write",
            remedy=remedy,
        )
    owned = set(files)

    # 2. What the demo writes must be its own or absent.
    for name in (_SUMMARY, _KEYS):
        if (out / name).exists() and name not in owned:
            raise ConfigError(
                f"--out folder {out} holds a {name} that `claims demo` did not write",
                remedy=f"move it away, or {remedy}",
            )
    receipts = out / _RECEIPTS
    if receipts.exists() and not receipts.is_dir():
        raise ConfigError(
            f"--out folder {out}: {_RECEIPTS} is a file, not a folder",
            remedy=f"move it away, or {remedy}",
        )
    return owned


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_demo(options: DemoOptions) -> dict[str, Any]:
    """Run the demo; returns the summary that is also written to `OUT/summary.json`.

    The workspace and the `--out` folder are held against other demos while it
    runs (`_alone`): two demos writing one summary and one receipts folder
    would mix their files, and the second found the first's only at its end.
    """
    with ExitStack() as held:
        return _run(options, held)


def _run(options: DemoOptions, held: ExitStack) -> dict[str, Any]:
    say = options.progress
    started = time.perf_counter()
    if options.insurers < 3:
        raise ConfigError("the joint check needs at least 3 insurers")
    rng = random.Random(options.seed)

    # 1. Read the FHIR data, before anything in the workspace is touched.
    source = options.fhir or example_bundles()
    if not source.is_dir():
        raise NotFound(f"{source} is not a folder of FHIR bundles")
    _owned_outputs(options.out)  # refused before anything is made
    held.enter_context(_alone(options.out, f"--out {options.out}", "--out DIR"))
    owned = _owned_outputs(options.out)
    intake = load_directory(source)
    for error in intake.errors:
        say(f"skipped bundle {error}" if error.claim_id is None else str(error))
    treatments = intake.treatments
    if not treatments:
        raise ConfigError(f"no FHIR Claims found in {source}")
    say(f"read {len(intake.bundles)} bundles, {len(treatments)} claims")
    settings = held.enter_context(_fresh_workspace(options))
    consortium = Consortium(settings)

    # 2. The consortium.
    insurers = [f"insurer-{i}" for i in range(1, options.insurers + 1)]
    for number, insurer in enumerate(insurers, start=1):
        consortium.add_insurer(insurer, f"Insurer {number}", example_policy(number))
    hospitals = {org.id: org.name for org in intake.organizations.values()}
    for _, treatment in treatments:
        hospitals.setdefault(treatment.provider, treatment.provider_name)
    for hospital_id, name in sorted(hospitals.items()):
        consortium.add_hospital(hospital_id, name or hospital_id)
    patients = sorted({patient for patient, _ in treatments})
    wallets = {}
    first_service: dict[str, str] = {}
    for patient, treatment in treatments:
        day = treatment.service_date
        first_service[patient] = min(first_service.get(patient, day), day)
    named = _named_insurers(source, insurers)
    insurer_of: dict[tuple[str, str], str] = {}
    for patient, treatment in treatments:
        digest = hashlib.sha256(patient.encode()).digest()
        fallback = insurers[digest[0] % len(insurers)]
        insurer_of[patient, treatment.invoice] = named.get(treatment.invoice, fallback)
    for patient in patients:
        member, key = consortium.add_member(f"patient-{patient}", "claimant", patient)
        wallets[patient] = key
    for (patient, _), insurer in sorted(insurer_of.items()):
        consortium.enrol(
            insurer, wallets[patient].did, _enrolled_since(first_service[patient])
        )
    say(
        f"consortium: {len(insurers)} insurers, {len(hospitals)} hospitals,"
        f" {len(patients)} claimants"
    )

    # 3. Credentials.
    issued: list[tuple[str, Treatment, dict[str, Any]]] = []
    for patient, treatment in treatments:
        credential = issue_treatment_credential(
            consortium, treatment.provider, treatment, wallets[patient].did
        )
        issued.append((patient, treatment, credential))
    say(f"issued {len(issued)} treatment credentials")

    # 4. Submissions: every claim once, some twice, and the hostile ones.
    claim_ids: dict[str, str] = {}
    home: dict[str, str] = {}
    for patient, treatment, credential in issued:
        home[credential["id"]] = insurer_of[patient, treatment.invoice]
        claim_ids[credential["id"]] = _submit(
            consortium, home[credential["id"]], wallets[patient], credential
        )
    duplicate_pairs = _submit_duplicates(
        consortium,
        issued,
        home,
        wallets,
        insurers,
        options.duplicates,
        rng,
        claim_ids,
    )
    hostile = (
        _submit_hostile(consortium, issued, home, wallets, rng)
        if options.hostile
        else {}
    )
    for hospital_id in sorted(hospitals):
        publish_status_list(consortium, hospital_id)
    say(
        f"submitted {len(claim_ids) + len(duplicate_pairs) + len(hostile)} claims"
        f" ({len(duplicate_pairs)} duplicates, {len(hostile)} hostile)"
    )

    # 5. The flow.
    flow_started = time.perf_counter()
    if options.prefect:
        from flows.process import process_claims

        report = process_claims(str(settings.workspace))
    else:
        from flows.process import run_steps

        report = run_steps(consortium)
    flow_seconds = time.perf_counter() - flow_started
    say(f"flow finished in {flow_seconds:.1f}s")

    # 6. Summary and receipts.
    summary = _summarise(consortium, duplicate_pairs, hostile)
    summary["bundles_skipped"] = [
        str(error) for error in intake.errors if error.claim_id is None
    ]
    summary["claims_skipped"] = [
        str(error) for error in intake.errors if error.claim_id is not None
    ]
    summary["step_seconds"] = {k: round(v, 4) for k, v in report["timings"].items()}
    summary["step_work_seconds"] = {k: round(v, 4) for k, v in report["work"].items()}
    summary["setup_seconds"] = round(flow_started - started, 4)
    summary["flow_seconds"] = round(flow_seconds, 4)
    summary["total_seconds"] = round(time.perf_counter() - started, 4)
    summary["workspace"] = str(settings.workspace)
    _write_outputs(consortium, options.out, summary, owned)
    return summary


def _enrolled_since(first_service: str) -> date:
    """Enrolment a year before the patient's first claim: past any waiting period."""
    year, month, day = (int(part) for part in first_service.split("-"))
    return date(year - 1, month, min(day, 28))


def _named_insurers(source: Path, insurers: list[str]) -> dict[str, str]:
    """FHIR Claim id -> the insurer whose shipped plan that Claim names.

    A FHIR Claim names who is to pay in its focal `Claim.insurance.coverage`;
    the demo matches that reference's `display` against the `insurer` names
    of the shipped plans (`claims/examples/insurer-N.toml`, the N-th insurer
    running the N-th plan). A name no plan has (Synthea's payers, say), and
    a Claim id found more than once in the folder, route nothing: those
    claims go to the patient's one insurer. Reads every bundle a second time
    (`load_directory` keeps no coverage); a file that does not parse is
    skipped silently, as `load_directory` has already reported it.
    """
    by_name: dict[str, str] = {}
    for number, insurer in enumerate(insurers, start=1):
        by_name.setdefault(str(_shipped_plan(number).get("insurer", "")), insurer)
    found: dict[str, str | None] = {}
    for file in sorted(source.glob("*.json")):
        if not file.is_file():
            continue
        try:
            bundle = load_user_json(read_user_file(file, what=file.name))
        except (OSError, MalformedDocument):
            continue
        entries = bundle.get("entry") if isinstance(bundle, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            if resource.get("resourceType") != "Claim" or not resource.get("id"):
                continue
            claim_id = str(resource["id"])
            payer = _focal_payer(resource, by_name)
            found[claim_id] = None if claim_id in found else payer
    return {claim_id: payer for claim_id, payer in found.items() if payer}


def _focal_payer(claim: dict[str, Any], by_name: dict[str, str]) -> str | None:
    """The insurer named by the focal coverage of a FHIR Claim, if any."""
    for insurance in claim.get("insurance") or ():
        if not isinstance(insurance, dict) or insurance.get("focal") is not True:
            continue
        coverage = insurance.get("coverage")
        display = coverage.get("display") if isinstance(coverage, dict) else None
        return by_name.get(display) if isinstance(display, str) else None
    return None


def _submit(
    consortium: Consortium,
    insurer_id: str,
    wallet: Any,
    credential: dict[str, Any],
    *,
    signed_challenge: str | None = None,
) -> str:
    challenge = issue_challenge(consortium, insurer_id)
    submission = make_submission(
        credential,
        wallet,
        challenge=challenge["challenge"],
        domain=challenge["domain"],
        signed_challenge=signed_challenge,
    )
    return receive(consortium, insurer_id, submission).id


def _submit_duplicates(
    consortium: Consortium,
    issued: list[tuple[str, Treatment, dict[str, Any]]],
    home: dict[str, str],
    wallets: dict[str, Any],
    insurers: list[str],
    count: int,
    rng: random.Random,
    claim_ids: dict[str, str],
) -> list[tuple[str, str]]:
    """Claim `count` treatments a second time at another insurer.

    `home` maps each credential id to the insurer it was first claimed at.
    Returns (first claim id, second claim id) pairs.
    """
    pairs: list[tuple[str, str]] = []
    picks = rng.sample(range(len(issued)), min(count, len(issued)))
    for pick in picks:
        patient, _, credential = issued[pick]
        first = home[credential["id"]]
        others = [i for i in insurers if i != first]
        elsewhere = others[rng.randrange(len(others))]
        enrolment = consortium.enrollment(first, wallets[patient].did)
        assert enrolment is not None
        consortium.enrol(elsewhere, wallets[patient].did, enrolment.since)
        second = _submit(consortium, elsewhere, wallets[patient], credential)
        pairs.append((claim_ids[credential["id"]], second))
    return pairs


def _submit_hostile(
    consortium: Consortium,
    issued: list[tuple[str, Treatment, dict[str, Any]]],
    home: dict[str, str],
    wallets: dict[str, Any],
    rng: random.Random,
) -> dict[str, str]:
    """The four bad submissions; returns claim id -> the rejection expected.

    Each goes to the insurer that the claim it was made from went to (`home`,
    by credential id).
    """
    expected: dict[str, str] = {}
    patient, treatment, credential = issued[rng.randrange(len(issued))]
    insurer, wallet = home[credential["id"]], wallets[patient]

    # A credential whose billed amount was raised after signing.
    tampered = copy.deepcopy(credential)
    tampered["id"] = f"{credential['id']}-tampered"
    lines = tampered["credentialSubject"]["treatment"]["lines"]
    lines[0]["amount"] = str(float(lines[0]["amount"]) * 10 + 1000)
    expected[_submit(consortium, insurer, wallet, tampered)] = "bad_credential_proof"

    # A credential from a clinic the consortium never accredited.
    consortium.add_hospital(OUTSIDER, "Clinic outside the consortium", accredited=False)
    outsider = issue_treatment_credential(consortium, OUTSIDER, treatment, wallet.did)
    expected[_submit(consortium, insurer, wallet, outsider)] = "untrusted_issuer"

    # A genuine credential presented with a challenge the insurer did not give.
    patient2, treatment2, credential2 = issued[rng.randrange(len(issued))]
    fresh = issue_treatment_credential(
        consortium, treatment2.provider, treatment2, wallets[patient2].did
    )
    expected[
        _submit(
            consortium,
            home[credential2["id"]],
            wallets[patient2],
            fresh,
            signed_challenge="not-the-insurers-challenge",
        )
    ] = "wrong_challenge"

    # A credential the hospital revoked before it was presented.
    patient3, treatment3, credential3 = issued[rng.randrange(len(issued))]
    revoked = issue_treatment_credential(
        consortium, treatment3.provider, treatment3, wallets[patient3].did
    )
    revoke(consortium, treatment3.provider, revoked["id"])
    expected[
        _submit(consortium, home[credential3["id"]], wallets[patient3], revoked)
    ] = "revoked"
    return expected


def _summarise(
    consortium: Consortium,
    duplicate_pairs: list[tuple[str, str]],
    hostile: dict[str, str],
) -> dict[str, Any]:
    with Session(consortium.store.engine) as session:
        claims = list(session.exec(select(Claim)))
    states: dict[str, int] = {}
    for claim in claims:
        states[claim.state] = states.get(claim.state, 0) + 1
    by_id = {claim.id: claim for claim in claims}
    in_pairs = {claim_id for pair in duplicate_pairs for claim_id in pair}
    caught = sum(1 for _, second in duplicate_pairs if by_id[second].duplicate)
    false_flags = sorted(
        claim.id for claim in claims if claim.duplicate and claim.id not in in_pairs
    )
    turnaround = sorted(
        (claim.settled_at - claim.submitted_at).total_seconds()
        for claim in claims
        if claim.settled_at is not None
    )
    hostile_ok = sum(
        1
        for claim_id, reason in hostile.items()
        if by_id[claim_id].state == ClaimState.REJECTED.value
        and (by_id[claim_id].reason or "").startswith(reason)
    )
    ledger = consortium.ledger
    size = ledger.size()
    return {
        "claims": len(claims),
        "settled": states.get("settled", 0),
        "denied": states.get("denied", 0),
        "in_review": states.get("in_review", 0),
        "rejected": states.get("rejected", 0),
        "pending": states.get("pending", 0),
        "states": dict(sorted(states.items())),
        "duplicates_injected": len(duplicate_pairs),
        "duplicates_caught": caught,
        "distinct_treatments_flagged": len(false_flags),
        "hostile_injected": len(hostile),
        "hostile_rejected_as_expected": hostile_ok,
        "risk_scored": sum(1 for claim in claims if claim.risk_score is not None),
        "risk_flagged": sum(1 for claim in claims if claim.risk_flagged),
        "turnaround_p50_s": round(_percentile(turnaround, 50), 4),
        "turnaround_p95_s": round(_percentile(turnaround, 95), 4),
        "ledger_size": size,
        "ledger_root": ledger.root(size).hex() if size else None,
        "ledger_trust": consortium.trust_file(),
        "insurers": [m.id for m in consortium.members("insurer")],
    }


def _write_outputs(
    consortium: Consortium, out: Path, summary: dict[str, Any], owned: set[str]
) -> None:
    """Write the receipts, keys and summary, replacing only the demo's files.

    `owned` lists what an earlier demo wrote in `out` (`_owned_outputs`): its
    receipts are removed, and `OUT_MARKER` lists what this run writes. The
    marker is written first with both sets, so that a run that stops half
    way leaves nothing in `out` a later demo would not own.
    """
    from flows.steps import settlement_index

    with Session(consortium.store.engine) as session:
        settled = list(
            session.exec(
                select(Claim.id).where(Claim.state == ClaimState.SETTLED.value)
            )
        )
    texts: dict[str, str] = {}
    for claim_id in settled:
        index = settlement_index(consortium, claim_id)
        if index is None:
            continue
        receipt = consortium.ledger.receipt(index)
        texts[f"{_RECEIPTS}/{claim_id}.json"] = json.dumps(receipt, indent=2)
    texts[_KEYS] = json.dumps(consortium.trust_file(), indent=2)
    texts[_SUMMARY] = json.dumps(summary, indent=2)
    for name in texts:
        if (out / name).exists() and name not in owned:
            raise ConfigError(
                f"--out folder {out} holds a {name} that `claims demo` did not"
                " write; nothing was written there",
                remedy="move it away, or give a new folder with --out",
            )

    (out / _RECEIPTS).mkdir(parents=True, exist_ok=True)
    _write_marker(out, owned | set(texts))
    for name in sorted(owned - set(texts)):
        (out / name).unlink(missing_ok=True)
    for name, text in texts.items():
        (out / name).write_text(text, encoding="utf-8")
    _write_marker(out, set(texts))


def _write_marker(out: Path, files: set[str]) -> None:
    data = {"made_by": "claims demo", "files": sorted(files)}
    (out / OUT_MARKER).write_text(json.dumps(data, indent=1), encoding="utf-8")
