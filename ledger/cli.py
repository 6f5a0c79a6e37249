"""``claims ledger`` commands that work offline, from files and keys alone.

The lead mounts `app` under ``claims ledger``; commands that need the
workspace store (``prove``, ``verify``) live with the claims CLI.
Exit status 0 means verified, 1 means not verified or unusable input, 3 that
a file named does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.errors import CheckpointError, LedgerError
from ledger.receipt import verify_checkpoint, verify_receipt

__all__ = ["app"]

app = typer.Typer(
    name="ledger",
    help="Verify ledger receipts and checkpoints offline.",
    no_args_is_help=True,
    add_completion=False,
)

KeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--key",
        "-k",
        help="A trusted verifier key (name+keyid+base64); repeat for more.",
    ),
]
KeysFileOption = Annotated[
    Path | None,
    typer.Option(
        "--keys-file",
        help='A JSON file: a list of verifier keys, or {"keys": [...],'
        ' "min_cosignatures": k} as the demo writes to ledger-keys.json.',
    ),
]
MinCosignaturesOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="Trusted witness cosignatures required (at least what the keys"
        " file asks for).",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=1)


def _read_bytes(path: Path, what: str) -> bytes:
    from credentials.errors import MalformedDocument
    from credentials.parse import read_user_file

    try:
        return read_user_file(path, what=f"{what} file {path}")
    except MalformedDocument as exc:
        raise _fail(f"error: {exc}") from exc
    except FileNotFoundError as exc:
        typer.echo(f"error: {what} file {path} does not exist", err=True)
        raise typer.Exit(code=3) from exc
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _fail(f"error: cannot read {what} file {path} ({reason})") from exc


def _read_text(path: Path, what: str) -> str:
    data = _read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            f"error: {what} file {path} is not UTF-8 (byte {exc.start})"
        ) from exc


def _read_json(path: Path, what: str) -> Any:
    """The JSON of a receipt or keys file, read as every user's JSON is read.

    `credentials.parse.load_user_json` refuses nesting deeper than 64 (the
    parser would otherwise overflow its stack) and names a syntax error by
    line and column.
    """
    from credentials.errors import MalformedDocument
    from credentials.parse import load_user_json

    data = _read_bytes(path, what)
    try:
        return load_user_json(data, what=f"{what} file {path}")
    except MalformedDocument as exc:
        raise _fail(f"error: {exc}") from exc


def collect_keys(
    keys: list[str] | None, keys_file: Path | None
) -> tuple[list[str], int]:
    """The trusted keys, and the cosignature quorum the keys file asks for.

    A keys file is either a JSON list of verifier keys, or a consortium trust
    file `{"keys": [...], "min_cosignatures": k}`.
    """
    collected = list(keys or [])
    quorum = 0
    if keys_file is not None:
        loaded = _read_json(keys_file, "keys")
        if isinstance(loaded, dict):
            quorum = loaded.get("min_cosignatures", 0)
            loaded = loaded.get("keys")
            if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 0:
                raise _fail(
                    f"error: keys file {keys_file}: min_cosignatures must be a"
                    " whole number, 0 or more"
                )
        if not isinstance(loaded, list) or not all(isinstance(k, str) for k in loaded):
            raise _fail(
                f"error: keys file {keys_file} must be a JSON list of strings or"
                ' {"keys": [...], "min_cosignatures": k}'
            )
        collected.extend(loaded)
    if not collected:
        raise _fail("error: give at least one trusted key with --key or --keys-file")
    return collected, quorum


@app.command("verify-receipt")
def verify_receipt_command(
    file: Annotated[Path, typer.Argument(help="The receipt JSON file.")],
    key: KeyOption = None,
    keys_file: KeysFileOption = None,
    min_cosignatures: MinCosignaturesOption = 0,
    rpc: Annotated[
        str | None,
        typer.Option(
            help="An EVM JSON-RPC endpoint: also check the receipt's chain anchor"
            " (needs the `chain` extra)."
        ),
    ] = None,
    anchor_address: Annotated[
        str | None,
        typer.Option(help="The consortium's anchoring account (with --rpc)."),
    ] = None,
) -> None:
    """Verify a settlement receipt offline: checkpoint signature, quorum, inclusion.

    Example: claims ledger verify-receipt r.json --keys-file ledger-keys.json
    """
    vkeys, quorum = collect_keys(key, keys_file)
    receipt = _read_json(file, "receipt")
    try:
        result = verify_receipt(
            receipt, vkeys, min_cosignatures=max(min_cosignatures, quorum)
        )
    except LedgerError as exc:
        raise _fail(f"receipt NOT verified: {exc}") from exc
    anchored = ""
    if rpc is not None:
        anchored = _check_anchor(receipt, rpc, anchor_address)
    elif isinstance(receipt.get("anchor"), dict):
        anchored = ", chain anchor not checked (give --rpc)"
    typer.echo(
        f"receipt verified: entry {result.leaf_index} of {result.checkpoint.origin} "
        f"at tree size {result.checkpoint.size}, signed by "
        f"{', '.join(result.log_signers)}, {len(result.cosigners)} cosignature(s)"
        f"{anchored}"
    )


def _web3_for(url: str) -> Any:
    """A web3 client for ``url`` (tests substitute an in-process chain)."""
    from web3 import HTTPProvider, Web3

    return Web3(HTTPProvider(url))


def _check_anchor(receipt: dict[str, Any], rpc: str, address: str | None) -> str:
    if address is None:
        raise _fail("error: --rpc needs --anchor-address, the anchoring account")
    from ledger.anchor import verify_anchor

    try:
        web3 = _web3_for(rpc)
    except ImportError as exc:
        raise _fail("error: --rpc needs the `chain` extra (web3)") from exc
    try:
        block = verify_anchor(receipt, web3, address)
    except LedgerError as exc:
        raise _fail(f"receipt NOT verified: {exc}") from exc
    return f", anchored in block {block}"


@app.command("verify-checkpoint")
def verify_checkpoint_command(
    file: Annotated[Path, typer.Argument(help="The checkpoint note file.")],
    key: KeyOption = None,
    keys_file: KeysFileOption = None,
    min_cosignatures: MinCosignaturesOption = 0,
) -> None:
    """Verify a checkpoint note: the log's signature and the witnesses' quorum.

    The rule `verify-receipt` holds a receipt's checkpoint to. Signature
    lines from keys not given are ignored.
    """
    vkeys, quorum = collect_keys(key, keys_file)
    note = _read_text(file, "checkpoint")
    try:
        verified = verify_checkpoint(
            note, vkeys, min_cosignatures=max(min_cosignatures, quorum)
        )
    except CheckpointError as exc:
        raise _fail(f"checkpoint NOT verified: {exc.reason}") from exc
    checkpoint = verified.checkpoint
    typer.echo(
        f"checkpoint verified: {checkpoint.origin} at tree size {checkpoint.size}, "
        f"signed by {', '.join(verified.log_signers)}, "
        f"{len(verified.cosigners)} cosignature(s)"
    )
