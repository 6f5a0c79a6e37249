"""`claims vc`: check a Verifiable Credential or Presentation from a file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from claims.cli._common import STATE, console, emit_json, require_file
from claims.errors import NotFound

__all__ = ["register"]


def _say(text: str) -> None:
    """Print a line as it is: no emoji codes (`did:key:` is not an emoji)."""
    console.print(text, emoji=False, highlight=False)


app = typer.Typer(
    help="Validate and verify Verifiable Credentials and Presentations.",
    no_args_is_help=True,
)

FileArgument = Annotated[
    Path, typer.Argument(help="A credential or presentation (JSON).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _load(file: Path) -> Any:
    from credentials.parse import MAX_BYTES, load_json, read_user_file

    require_file(file)
    return load_json(read_user_file(file, what=str(file), max_bytes=MAX_BYTES))


@app.command()
def validate(file: FileArgument, as_json: JsonOption = False) -> None:
    """List every VC Data Model 2.0 violation of a document (structure only).

    Proofs, trust, dates against the clock and status are not checked here
    (see `claims vc verify`). Exits 1 if there is any violation.

    Example: claims vc validate credential.json
    """
    from credentials.validate import validate_credential, validate_presentation

    document = _load(file)
    types = document.get("type") if isinstance(document, dict) else None
    is_vp = "VerifiablePresentation" in (types if isinstance(types, list) else [types])
    problems = (
        validate_presentation(document) if is_vp else validate_credential(document)
    )
    kind = "presentation" if is_vp else "credential"
    if as_json:
        emit_json({"kind": kind, "valid": not problems, "violations": problems})
    elif problems:
        _say(f"{file}: {len(problems)} violation(s) of VC Data Model 2.0:")
        for problem in problems:
            _say(f"  - {problem}")
    else:
        _say(f"{file}: a well-formed {kind} (VC Data Model 2.0)")
    if problems:
        raise typer.Exit(1)


@app.command()
def verify(
    file: FileArgument,
    challenge: Annotated[
        str | None, typer.Option(help="For a presentation: the expected challenge.")
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="For a presentation: the expected domain.")
    ] = None,
    no_status: Annotated[
        bool, typer.Option("--no-status", help="Skip the status list check.")
    ] = False,
    no_trust: Annotated[
        bool, typer.Option("--no-trust", help="Skip the trusted-issuer check.")
    ] = False,
    skew: Annotated[
        int, typer.Option(min=0, help="Clock skew allowed on validity, in seconds.")
    ] = 300,
    context: Annotated[
        list[str] | None,
        typer.Option(
            help="URL=FILE: a pinned JSON-LD context, for eddsa-rdfc-2022 proofs"
            " (repeatable; only contexts with a known SHA-256)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run every check on a credential or presentation and print each outcome.

    Checks: data model, signature, issuer trusted (the workspace's registry),
    validity, status (the workspace's published lists), and for a
    presentation holder binding and challenge. Exits 1 unless every check
    passed; --no-status and --no-trust skip those two, for documents from
    outside the consortium.

    Example: claims vc verify credential.json --no-status --no-trust --json
    """
    from rich.table import Table
    from rich.text import Text

    from claims.store import utcnow
    from credentials.report import check_document

    document = _load(file)
    contexts = _pinned_contexts(context or [])
    issuers = status_lists = None
    if not (no_status and no_trust):
        from claims.consortium import Consortium

        settings = STATE.settings()
        if not (settings.workspace / "claims.db").exists():
            raise NotFound(
                f"no consortium store in {settings.workspace}",
                remedy="pass --workspace, or --no-status --no-trust",
            )
        consortium = Consortium(settings)
        if not no_trust:
            issuers = consortium.trusted_issuers()
        if not no_status:
            status_lists = consortium.status_list_resolver()
    report = check_document(
        document,
        now=utcnow(),
        skew=timedelta(seconds=skew),
        issuers=issuers,
        status_lists=status_lists,
        challenge=challenge,
        domain=domain,
        contexts=contexts,
    )
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(title=f"{file}: {report.kind}")
        for column in ("check", "outcome", "reason"):
            table.add_column(column)
        colours = {"passed": "green", "failed": "red", "undetermined": "yellow"}
        for check in report.checks:
            colour = colours.get(check.outcome, "dim")
            table.add_row(
                check.name, Text(check.outcome, style=colour), Text(check.reason)
            )
        console.print(table)
        _say("verified" if report.ok else "NOT verified")
    if not report.ok:
        raise typer.Exit(1)


def _pinned_contexts(pairs: list[str]) -> Any:
    """`PinnedContexts` of `URL=FILE` pairs, or None when there are none."""
    from credentials.parse import MAX_BYTES, read_user_file
    from credentials.rdfc import PinnedContexts

    if not pairs:
        return None
    documents = {}
    for pair in pairs:
        url, sep, name = pair.partition("=")
        if not sep or not url or not name:
            raise typer.BadParameter(
                f"{pair!r} is not URL=FILE", param_hint="'--context'"
            )
        path = Path(name)
        require_file(path, "context file")
        documents[url] = read_user_file(path, what=str(path), max_bytes=MAX_BYTES)
    return PinnedContexts(documents)


def register(root: typer.Typer) -> None:
    """Add `claims vc ...` to the root command."""
    root.add_typer(app, name="vc")
