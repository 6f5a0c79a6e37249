"""`claims ledger`: offline checks (from `ledger.cli`) and workspace commands.

`prove` writes a receipt for one entry of the workspace's log; `verify`
audits the whole log (entries, stored hashes, checkpoints, cosignatures,
witness states) and exits 1 listing every finding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from claims.cli._common import console, emit_json, errors, open_consortium
from claims.errors import ConfigError, NotFound
from ledger.cli import verify_checkpoint_command, verify_receipt_command

__all__ = ["app", "register"]

app = typer.Typer(
    name="ledger",
    help="Prove and audit the workspace's ledger; verify receipts and checkpoints.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("verify-receipt")(verify_receipt_command)
app.command("verify-checkpoint")(verify_checkpoint_command)

AuditKeysOption = Annotated[
    Path | None,
    typer.Option(
        "--keys-file",
        help="Trust these published keys (the demo's ledger-keys.json) instead"
        " of the workspace's own; no passphrase is needed.",
    ),
]


def _consortium() -> Any:
    return open_consortium()


def _ledger(consortium: Any, keys_file: Path | None) -> tuple[Any, list[str], int]:
    """The workspace's ledger, the witness keys and the quorum to audit it by.

    Without `keys_file` they come from the workspace's own keys, which opens
    them with the workspace passphrase. With it, from the published trust
    file (the demo's ledger-keys.json): an auditor handed the store needs no
    secret, and trusts keys that did not come with the data being audited.
    """
    if keys_file is None:
        log = consortium.ledger
        witnesses = [w.vkey for w in consortium.witnesses()]
        return log, witnesses, consortium.witness_quorum()
    from claims.consortium import LEDGER_ORIGIN
    from ledger.cli import collect_keys
    from ledger.log import TransparencyLog
    from ledger.note import ED25519_TYPE, NoteVerifier

    vkeys, quorum = collect_keys(None, keys_file)
    verifiers = [NoteVerifier.from_vkey(vkey) for vkey in vkeys]
    logs = [
        v
        for v in verifiers
        if v.signature_type == ED25519_TYPE and v.name == LEDGER_ORIGIN
    ]
    if not logs:
        raise ConfigError(
            f"keys file {keys_file} holds no key of the ledger {LEDGER_ORIGIN}"
        )
    log = TransparencyLog(consortium.store.engine, LEDGER_ORIGIN, logs[0])
    return log, [v.vkey for v in verifiers if v.is_cosigner], quorum


def _entry_index(consortium: Any, log: Any, entry_id: str) -> int:
    """The leaf index `entry_id` names (see `prove` for the order of the tries).

    Raises `NotFound`; `AmbiguousClaimId` for a claim id prefix that more
    than one claim id starts with.
    """
    from claims.store import AmbiguousClaimId

    shown = (
        entry_id
        if len(entry_id) <= 80
        else f"{entry_id[:40]}... ({len(entry_id)} characters)"
    )

    # 1. A claim of the store, by whole id or 8+ character prefix.
    digits = entry_id.isascii() and entry_id.isdigit()
    claim_id = state = None
    with consortium.store.session() as session:
        try:
            claim = consortium.store.get_claim(session, entry_id)
            claim_id, state = claim.id, claim.state
        except AmbiguousClaimId:
            raise
        except NotFound:
            pass
    if claim_id is not None:
        index = log.index_for_key(_settlement_key(claim_id))
        if index is None:
            raise NotFound(
                f"claim {claim_id} has no settlement on the ledger (it is {state})",
                remedy=(
                    "an all-digit argument is a claim id when a claim id is or"
                    " starts with it; a leaf index is one that none starts with"
                    if digits
                    else "only a settled claim has a settlement entry to prove"
                ),
            )
        return int(index)

    # 2. A leaf index.
    if digits:
        # Python reads at most 4300 digits; no ledger has 10^20 entries.
        index = int(entry_id) if len(entry_id) <= 20 else log.size()
        if index >= log.size():
            raise NotFound(
                f"entry {shown} is beyond the ledger (size {log.size()})",
                remedy="give an index below the size, a record key or a claim id",
            )
        return index

    # 3. A record's idempotency key, or the settlement of a claim id that is
    # on the ledger but not in this store.
    for key in (entry_id, _settlement_key(entry_id)):
        index = log.index_for_key(key)
        if index is not None:
            return int(index)
    raise NotFound(
        f"no ledger entry with key {shown!r} and no claim whose id is or starts"
        " with it",
        remedy="check the id with `claims status` (a claim id prefix needs at"
        " least 8 characters), or give the leaf index",
    )


def _settlement_key(claim_id: str) -> str:
    return f"settlement:settlement-{claim_id}"


@app.command("prove")
def prove(
    entry_id: Annotated[
        str,
        typer.Argument(
            help="A claim id (whole, or its first 8 or more characters as"
            " `claims status` prints them: its settlement), a leaf index, or a"
            " record's idempotency key. A claim id is tried first, so an"
            " all-digit argument is a leaf index only when no claim id is or"
            " starts with it.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the receipt here \\[default: stdout]."),
    ] = None,
    keys_file: AuditKeysOption = None,
) -> None:
    """Write a self-contained receipt for one ledger entry.

    The receipt holds the entry, its inclusion proof and the latest cosigned
    checkpoint; check it offline with `claims ledger verify-receipt`.

    Example: claims ledger prove 1b4e28ba -o r.json
    """
    consortium = _consortium()
    log, _, _ = _ledger(consortium, keys_file)
    index = _entry_index(consortium, log, entry_id)
    receipt = log.receipt(index)
    text = json.dumps(receipt, indent=2)
    if out is None:
        typer.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    errors.print(
        f"wrote the receipt of entry {index} (tree size {receipt['tree_size']})"
        f" to {out}",
        highlight=False,
    )


@app.command("verify")
def verify(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the findings as JSON.")
    ] = False,
    keys_file: AuditKeysOption = None,
) -> None:
    """Audit the whole ledger of the workspace; exit 1 listing what is wrong.

    Recomputes every leaf and the root from the entries, checks every stored
    subtree hash, every checkpoint (signature, root, consistency with the
    others), every cosignature by a member's witness and the quorum, and
    every witness's last cosigned state. A changed, deleted, inserted or
    reordered entry and a forked checkpoint are named by entry index.

    Example: claims -w demo-ws ledger verify
    """
    log, witnesses, quorum = _ledger(_consortium(), keys_file)
    findings = log.audit(witnesses, quorum=quorum)
    size = log.size()
    if as_json:
        emit_json(
            {
                "origin": log.origin,
                "size": size,
                "ok": not findings,
                "findings": [
                    {"kind": f.kind, "index": f.index, "message": f.message}
                    for f in findings
                ],
            }
        )
    elif not findings:
        console.print(
            f"ledger verified: {log.origin}, {size} entries, root"
            f" {log.root(size).hex()}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        errors.print(
            f"[red]ledger NOT verified[/red]: {len(findings)} finding(s)",
            highlight=False,
            markup=True,
        )
        for finding in findings:
            where = "-" if finding.index is None else str(finding.index)
            errors.print(f"  {finding.kind} at entry {where}: {finding}", markup=False)
    if findings:
        raise typer.Exit(code=1)


def register(root: typer.Typer) -> None:
    """Add `claims ledger ...` to the root command."""
    root.add_typer(app, name="ledger")
