"""`claims hospital`: a hospital's DID, treatment credentials and status list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from claims.cli._common import (
    STATE,
    check_member_id,
    console,
    emit_json,
    require_file,
)
from claims.errors import ConfigError, NotFound

__all__ = ["register"]


def _say(text: str) -> None:
    """Print a line as it is: no emoji codes (`did:key:` is not an emoji)."""
    console.print(text, emoji=False, highlight=False)


app = typer.Typer(
    help="Issue treatment credentials, revoke them, publish the status list.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _consortium() -> Any:
    from claims.consortium import Consortium

    return Consortium(STATE.settings())


def _hospital(consortium: Any, hospital_id: str) -> Any:
    try:
        member = consortium.member(hospital_id)
    except NotFound:
        member = None
    if member is None or member.kind != "hospital":
        raise NotFound(
            f"{hospital_id!r} is not a hospital of this workspace",
            remedy=f"create it with `claims hospital init {hospital_id}`",
        )
    return member


@app.command()
def init(
    hospital_id: Annotated[
        str,
        typer.Argument(help="The hospital's member id.", callback=check_member_id),
    ],
    name: Annotated[
        str | None, typer.Option(help="Display name \\[default: the id].")
    ] = None,
    years: Annotated[
        int, typer.Option(min=1, help="Years of accreditation from today.")
    ] = 5,
    as_json: JsonOption = False,
) -> None:
    """Create a hospital: its did:key, its accreditation and an empty status list.

    Running it again for the same hospital changes nothing and shows its DID.

    Example: claims hospital init general-hospital --name "General Hospital"
    """
    from claims.hospital import publish_status_list, status_list_url

    consortium = _consortium()
    member = consortium.add_hospital(hospital_id, name or hospital_id, years=years)
    path = publish_status_list(consortium, hospital_id)
    data = {
        "hospital": member.id,
        "name": member.name,
        "did": member.did,
        "accredited_from": _iso(member.accredited_from),
        "accredited_until": _iso(member.accredited_until),
        "status_list": status_list_url(hospital_id),
        "published": str(path),
    }
    if as_json:
        emit_json(data)
        return
    console.print(
        f"hospital [bold]{escape(member.id)}[/bold] is {member.did}",
        highlight=False,
        markup=True,
    )
    _say(f"status list {data['status_list']} published at {path}")


@app.command()
def issue(
    bundle: Annotated[
        Path, typer.Argument(help="A FHIR R4 Bundle file of the hospital's data.")
    ],
    to: Annotated[str, typer.Option("--to", help="The patient's wallet DID.")],
    encounter: Annotated[
        str | None, typer.Option(help="The Encounter id the claim bills.")
    ] = None,
    claim: Annotated[
        str | None, typer.Option(help="The FHIR Claim id (the invoice).")
    ] = None,
    hospital: Annotated[
        str | None,
        typer.Option(help="Issuing hospital \\[default: the Claim's provider]."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the credential here, not to stdout.")
    ] = None,
) -> None:
    """Issue a signed treatment credential for one FHIR Claim to a patient's DID.

    Name the Claim by --encounter or by --claim. The credential (JSON) goes to
    standard output or to --out; give it to the patient for `claims wallet add`.

    Example: claims hospital issue bundle.json --encounter enc-1 --to DID,
    where DID is the patient's did:key, as `claims wallet list` prints it.
    """
    from claims.hospital import (
        find_treatment,
        issue_treatment_credential,
        publish_status_list,
    )
    from credentials.did_key import public_key_from_did
    from credentials.errors import InvalidDid

    # 1. The inputs: a DID to issue to, and one Claim of the bundle.
    try:
        public_key_from_did(to)
    except InvalidDid as exc:
        raise typer.BadParameter(
            f"{exc}; give the patient's wallet DID (did:key:z6Mk...)",
            param_hint="'--to'",
        ) from exc
    if (encounter is None) == (claim is None):
        raise typer.BadParameter(
            "name the treatment with exactly one of them",
            param_hint="'--encounter' / '--claim'",
        )
    require_file(bundle)
    treatment = find_treatment(bundle, encounter=encounter, claim=claim)

    # 2. Issue, and publish the list its status entry points at.
    consortium = _consortium()
    hospital_id = hospital or treatment.provider
    _hospital(consortium, hospital_id)
    credential = issue_treatment_credential(consortium, hospital_id, treatment, to)
    publish_status_list(consortium, hospital_id)
    text = json.dumps(credential, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        _say(f"issued {credential['id']}; wrote {out}")


@app.command()
def revoke(
    credential: Annotated[
        str, typer.Argument(help="A credential id, or a file holding the credential.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Revoke a credential this workspace's hospital issued, and republish its list.

    Example: claims hospital revoke urn:uuid:0e4c3b9a-5d7e-4a61-9f0a-1d2c3b4a5e6f
    """
    from claims.hospital import issuing_hospital
    from claims.hospital import revoke as revoke_credential

    credential_id = _credential_id(credential)
    consortium = _consortium()
    hospital_id = issuing_hospital(consortium, credential_id)
    index = revoke_credential(consortium, hospital_id, credential_id)
    data = {"credential": credential_id, "hospital": hospital_id, "index": index}
    if as_json:
        emit_json(data)
        return
    _say(
        f"revoked {credential_id} (status index {index} of {hospital_id});"
        " the signed list is republished"
    )


@app.command("status-list")
def status_list(
    hospital_id: Annotated[str, typer.Argument(help="The hospital's member id.")],
    publish: Annotated[
        bool,
        typer.Option(
            "--publish/--no-publish", help="Sign and publish the list anew first."
        ),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the signed status list credential.")
    ] = False,
) -> None:
    """Publish (sign anew) and show a hospital's status list credential.

    Example: claims hospital status-list general-hospital --json
    """
    from claims.hospital import publish_status_list
    from credentials.parse import load_json
    from credentials.status_list import StatusList

    consortium = _consortium()
    _hospital(consortium, hospital_id)
    if publish:
        path = publish_status_list(consortium, hospital_id)
    else:
        path = consortium.settings.status_dir / hospital_id / "1.json"
        if not path.is_file():
            raise NotFound(
                f"hospital {hospital_id} has not published a status list",
                remedy=f"run `claims hospital status-list {hospital_id}`",
            )
    document = load_json(path.read_bytes())
    if as_json:
        emit_json(document)
        return
    bits = StatusList.decode(document["credentialSubject"]["encodedList"])
    set_bits = sum(bits.get(i) for i in range(bits.length))
    purpose = document["credentialSubject"]["statusPurpose"]
    _say(f"status list {document['id']} ({purpose}) by {document['issuer']}")
    _say(
        f"{bits.length} entries, {set_bits} set; valid from {document['validFrom']};"
        f" published at {path}"
    )


def _credential_id(value: str) -> str:
    """The id of a credential named by id or given as a file."""
    from credentials.parse import MAX_BYTES, load_json, read_user_file

    path = Path(value)
    if not path.is_file():
        return value
    document = load_json(read_user_file(path, what=value, max_bytes=MAX_BYTES))
    credential_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(credential_id, str):
        raise ConfigError(f"{path} is not a credential with an id")
    return credential_id


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def register(root: typer.Typer) -> None:
    """Add `claims hospital ...` to the root command."""
    root.add_typer(app, name="hospital")
