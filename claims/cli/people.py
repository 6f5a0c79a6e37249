"""`claims submit` and `claims track`: what a claimant does from a terminal.

Both talk to an insurer's gateway (`--insurer-url`) or, embedded, to the
local workspace (`--insurer ID` for submit; neither for track). The holder
key comes from a wallet (`--wallet NAME`, passphrase from
`CLAIMS_WALLET_PASSPHRASE` or a prompt) or from `--key-file` (a hex seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from claims.cli._common import STATE, console, emit_json, read_passphrase
from claims.errors import ConfigError, NotFound
from credentials.errors import CredentialError
from credentials.keys import Ed25519Key
from credentials.parse import MAX_BYTES, load_json, load_user_json, read_user_file

__all__ = ["register"]

WalletOption = Annotated[
    str | None, typer.Option("--wallet", help="Wallet name in the workspace.")
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file", help="A holder key file (hex seed) instead of a wallet."
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--insurer-url", help="The insurer's gateway, e.g. http://127.0.0.1:8000."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _key(wallet: str | None, key_file: Path | None) -> Ed25519Key:
    """The holder key from `--key-file` or a wallet (passphrase from env or prompt)."""
    if key_file is not None:
        try:
            seed = bytes.fromhex(key_file.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            raise NotFound(f"no key file {key_file}") from None
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"key file {key_file} is not a hex seed") from None
        return Ed25519Key.from_seed(seed)
    if wallet is None:
        raise typer.BadParameter(
            "no holder key given: pass one of them",
            param_hint="'--wallet' / '--key-file'",
        )
    from claims.wallet import PASSPHRASE_ENV, Wallet

    opened = Wallet.open(STATE.settings().workspace, wallet)
    return opened.key(read_passphrase(f"wallet {wallet}", PASSPHRASE_ENV))


def _did(wallet: str | None, key_file: Path | None) -> str:
    """The holder DID, without unsealing a wallet's key."""
    if wallet is not None and key_file is None:
        from claims.wallet import Wallet

        return Wallet.open(STATE.settings().workspace, wallet).did
    return _key(wallet, key_file).did


def _credential(source: str, wallet: str | None) -> dict[str, Any]:
    """A credential from a JSON file, or by id from the wallet."""
    path = Path(source)
    if path.is_file():
        # The hardened parser: size, depth, duplicate keys, numbers (the same
        # limits as `claims vc validate`).
        try:
            data = load_json(read_user_file(path, what=source, max_bytes=MAX_BYTES))
        except CredentialError as exc:
            raise ConfigError(f"{path} is not a usable credential: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} is not a JSON credential")
        return data
    if wallet is not None:
        from claims.wallet import Wallet

        return Wallet.open(STATE.settings().workspace, wallet).get(source)
    raise NotFound(f"no credential file {source}")


def submit(
    credential: Annotated[
        str,
        typer.Argument(help="Credential JSON file, or a credential id in the wallet."),
    ],
    insurer_url: UrlOption = None,
    insurer: Annotated[
        str | None,
        typer.Option("--insurer", help="Embedded: submit to this insurer locally."),
    ] = None,
    wallet: WalletOption = None,
    key_file: KeyFileOption = None,
    consent: Annotated[
        bool,
        typer.Option(
            "--consent/--no-consent", help="Consent to the joint fraud check."
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Submit a treatment credential as a claim, to a gateway or locally.

    Example: claims submit visit.json --insurer-url http://127.0.0.1:8000 --wallet alice
    """
    if (insurer_url is None) == (insurer is None):
        raise typer.BadParameter(
            "say where to submit with exactly one of them",
            param_hint="'--insurer-url' / '--insurer'",
        )
    data = _credential(credential, wallet)
    key = _key(wallet, key_file)
    if insurer_url is not None:
        from claims.gateway.client import GatewayClient

        with (
            GatewayClient(insurer_url, key) as client,
            console.status("submitting", spinner="dots") if not as_json else _quiet(),
        ):
            view = client.submit(data, consent=consent)
    else:
        from claims.consortium import Consortium
        from claims.gateway.app import claim_view
        from claims.submission import issue_challenge, make_submission, receive

        consortium = Consortium(STATE.settings())
        challenge = issue_challenge(consortium, insurer or "")
        submission = make_submission(
            data,
            key,
            challenge=challenge["challenge"],
            domain=challenge["domain"],
            consent=consent,
        )
        claim = receive(consortium, insurer or "", submission)
        view = claim_view(consortium, claim).model_dump(mode="json")
    if as_json:
        emit_json(view)
        return
    console.print(
        f"claim [bold]{escape(view['id'])}[/bold] {escape(view['state'])} at"
        f" {escape(view['insurer'])}; follow it with `claims track`",
        markup=True,
    )


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def track(
    insurer_url: UrlOption = None,
    insurer: Annotated[
        str | None,
        typer.Option("--insurer", help="Embedded: only this insurer's claims."),
    ] = None,
    wallet: WalletOption = None,
    key_file: KeyFileOption = None,
    trust_file: Annotated[
        Path | None,
        typer.Option(
            "--trust-file",
            help="Ledger keys to verify receipts with (default: the consortium's,"
            " or the gateway's /ledger/keys).",
        ),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.2, help="Seconds between polls.")
    ] = 2.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print the claims once, no terminal UI.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Follow my claims live: states, amounts, timeline, receipt verified or not.

    Keys: arrows or j/k move, r refreshes, q quits.

    Example: claims track --insurer-url http://127.0.0.1:8000 --wallet alice
    """
    from claims.tui import ClaimsTracker, GatewaySource, StoreSource, receipt_status

    trust: dict[str, Any] | None = None
    if trust_file is not None:
        try:
            what = f"trust file {trust_file}"
            trust = load_user_json(read_user_file(trust_file, what=what), what=what)
        except FileNotFoundError:
            raise NotFound(f"no trust file {trust_file}") from None
    source: Any
    if insurer_url is not None:
        from claims.gateway.client import GatewayClient

        client = GatewayClient(insurer_url, _key(wallet, key_file))
        source = GatewaySource(client)
        trust = trust or client.ledger_keys()
        where = insurer_url
    else:
        from claims.consortium import Consortium

        consortium = Consortium(STATE.settings())
        source = StoreSource(consortium, _did(wallet, key_file), insurer)
        trust = trust or consortium.trust_file()
        where = str(consortium.settings.workspace)
    if once or as_json:
        views = source.claims()
        for view in views:
            if view["state"] == "settled":
                view["receipt_check"] = receipt_status(
                    source.receipt(view["id"]), trust
                )
        if as_json:
            emit_json(views)
            return
        from rich.table import Table

        table = Table(title=f"{len(views)} claims")
        for column in ("claim", "insurer", "state", "billed", "payable", "receipt"):
            table.add_column(column)
        for view in views:
            table.add_row(
                view["id"],
                view["insurer"],
                "in review" if view["in_review"] else view["state"],
                view["billed"] or "-",
                view["payable"] or "-",
                view.get("receipt_check", "-"),
            )
        console.print(table)
        return
    ClaimsTracker(source, trust=trust, interval=interval, title=where).run()


def register(root: typer.Typer) -> None:
    """Add `claims submit` and `claims track` to the root command."""
    root.command("submit")(submit)
    root.command("track")(track)
