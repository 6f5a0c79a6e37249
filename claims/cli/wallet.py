"""`claims wallet`: a claimant's holder key and credentials, and presentations.

The wallet passphrase comes from `$CLAIMS_WALLET_PASSPHRASE` or a prompt,
never from a command-line argument (arguments show in `ps` and shell history).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from claims.cli._common import (
    STATE,
    console,
    emit_json,
    read_passphrase,
    require_file,
)

__all__ = ["register"]


def _say(text: str) -> None:
    """Print a line as it is: no emoji codes (`did:key:` is not an emoji)."""
    console.print(text, emoji=False, highlight=False)


app = typer.Typer(
    help="Hold credentials and present them to an insurer.", no_args_is_help=True
)

NameOption = Annotated[str, typer.Option("--name", "-n", help="The wallet's name.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _passphrase(*, confirm: bool) -> str:
    from claims.wallet import PASSPHRASE_ENV

    return read_passphrase("wallet", PASSPHRASE_ENV, confirm=confirm)


@app.command()
def init(name: NameOption = "default", as_json: JsonOption = False) -> None:
    """Create a wallet with a new holder key (did:key), sealed with a passphrase.

    The passphrase is read from $CLAIMS_WALLET_PASSPHRASE, else prompted for.

    Example: claims wallet init --name alice
    """
    from claims.wallet import Wallet

    workspace = STATE.settings().workspace
    wallet = Wallet.create(workspace, name, _passphrase(confirm=True))
    if as_json:
        emit_json({"wallet": name, "did": wallet.did, "folder": str(wallet.folder)})
        return
    console.print(
        f"wallet [bold]{escape(name)}[/bold] holds the key of {wallet.did}",
        highlight=False,
        markup=True,
    )
    _say("give this DID to the hospital that issues your credentials")


@app.command("list")
def list_credentials(name: NameOption = "default", as_json: JsonOption = False) -> None:
    """List the wallet's DID and the credentials it holds.

    Example: claims wallet list --name alice --json
    """
    from rich.table import Table
    from rich.text import Text

    from claims.wallet import Wallet

    wallet = Wallet.open(STATE.settings().workspace, name)
    summaries = wallet.list()
    if as_json:
        emit_json({"did": wallet.did, "credentials": [s.to_dict() for s in summaries]})
        return
    table = Table(title=Text(f"wallet {name}: {wallet.did}"))
    for column in ("credential", "type", "issuer", "valid until"):
        table.add_column(column)
    for summary in summaries:
        table.add_row(
            Text(summary.id),
            Text(", ".join(t for t in summary.types if t != "VerifiableCredential")),
            Text(summary.issuer),
            Text(summary.valid_until or ""),
        )
    console.print(table)


@app.command()
def add(
    file: Annotated[Path, typer.Argument(help="A credential (JSON) issued to you.")],
    name: NameOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Store a credential in the wallet (its subject must be the wallet's DID).

    Example: claims wallet add credential.json --name alice
    """
    from claims.wallet import Wallet
    from credentials.parse import MAX_BYTES, read_user_file

    wallet = Wallet.open(STATE.settings().workspace, name)
    require_file(file)
    credential_id = wallet.add(
        read_user_file(file, what=str(file), max_bytes=MAX_BYTES)
    )
    if as_json:
        emit_json({"wallet": name, "added": credential_id})
        return
    _say(f"wallet {name} now holds {credential_id}")


@app.command()
def present(
    challenge: Annotated[str, typer.Option(help="The challenge the insurer gave you.")],
    domain: Annotated[str, typer.Option(help="The insurer's domain.")],
    credential_id: Annotated[
        str | None,
        typer.Argument(help="The credential to present \\[default: the only one]."),
    ] = None,
    name: NameOption = "default",
    out: Annotated[
        Path | None, typer.Option(help="Write the presentation here, not stdout.")
    ] = None,
) -> None:
    """Sign a presentation of one credential for an insurer's challenge and domain.

    Prints the Verifiable Presentation (JSON), signed by the wallet's key with
    proof purpose `authentication`.

    Example: claims wallet present --challenge 3q2-7Yw --domain insurer-1.example
    """
    from claims.store import utcnow
    from claims.wallet import Wallet

    wallet = Wallet.open(STATE.settings().workspace, name)
    wallet.get(credential_id)  # fail on a missing credential before the prompt
    vp = wallet.present(
        _passphrase(confirm=False),
        challenge=challenge,
        domain=domain,
        created=utcnow(),
        credential_id=credential_id,
    )
    text = json.dumps(vp, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        _say(f"wrote the presentation to {out}")


def register(root: typer.Typer) -> None:
    """Add `claims wallet ...` to the root command."""
    root.add_typer(app, name="wallet")
