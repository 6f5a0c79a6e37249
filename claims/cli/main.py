"""The `claims` command.

Exit codes, for scripts:

    0   done
    1   a check failed or a request was refused (the message says which)
    2   the command line was wrong (usage)
    3   something named does not exist (a claim id, a file, a key)
    70  an internal error: please report it, with the output of `--debug`

Without `--debug` no traceback and no orchestration log reaches the terminal;
errors print one message and, where there is one, a remedy.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from claims.cli import hospital, insurer, ledger, payer, people, vc, wallet
from claims.cli._common import STATE, console, emit_json, errors, require_store
from claims.errors import ClaimsError, NotFound
from claims.settings import quiet_prefect

__all__ = ["app", "main"]

app = typer.Typer(
    name="claims",
    help="Medical insurance claims, from hospital credential to cosigned settlement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def root(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="CLAIMS_WORKSPACE",
            help="Folder holding the store, keys and status lists"
            " \\[default: ./claims-workspace].",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and orchestration logs.")
    ] = False,
) -> None:
    """Medical insurance claims, from hospital credential to cosigned settlement.

    Example: claims demo && claims status
    """
    STATE.workspace = workspace
    STATE.debug = debug
    quiet_prefect(debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=errors, show_path=False)],
    )


# -- demo ----------------------------------------------------------------------


@app.command()
def demo(
    fhir: Annotated[
        Path | None,
        typer.Option(
            help="A folder of FHIR R4 bundles \\[default: the shipped examples]."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where the summary and receipts go.")
    ] = Path("demo-out"),
    insurers: Annotated[int, typer.Option(min=3, help="How many insurers.")] = 3,
    duplicates: Annotated[
        int, typer.Option(min=0, help="Treatments to claim a second time elsewhere.")
    ] = 5,
    hostile: Annotated[
        bool,
        typer.Option(
            help="Add a tampered, an outsider's, a wrong-challenge and a"
            " revoked submission."
        ),
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON.")
    ] = False,
) -> None:
    """Run a whole consortium end to end: issue, submit, verify, check, pay, log.

    Example: claims demo --fhir ../shared/data/synthea_r4 --out demo-out
    """
    from claims.demo import DemoOptions, run_demo

    def say(message: str) -> None:
        if not as_json:
            console.print(f"[dim]-[/dim] {escape(message)}", markup=True)

    options = DemoOptions(
        fhir=fhir,
        out=out,
        workspace=STATE.workspace,
        insurers=insurers,
        duplicates=duplicates,
        hostile=hostile,
        progress=say,
    )
    with console.status("running the demo", spinner="dots") if not as_json else _null():
        summary = run_demo(options)
    if as_json:
        emit_json(summary)
        return
    table = Table(title="claims demo", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "claims",
        "settled",
        "denied",
        "in_review",
        "rejected",
        "pending",
        "duplicates_injected",
        "duplicates_caught",
        "distinct_treatments_flagged",
        "hostile_injected",
        "hostile_rejected_as_expected",
        "risk_scored",
        "risk_flagged",
        "turnaround_p50_s",
        "turnaround_p95_s",
        "ledger_size",
        "flow_seconds",
    ):
        table.add_row(key, str(summary.get(key)))
    console.print(table)
    console.print(f"ledger root {summary['ledger_root']}")
    console.print(
        f"wrote {out / 'summary.json'} and {summary['settled']} receipts in"
        f" {out / 'receipts'}"
    )
    # The commands as the README installs them, with the workspace this demo
    # used; not wrapped by Rich, so that each copies as one line.
    claims = ".venv/bin/claims"
    if STATE.workspace is not None:
        claims += f" --workspace {shlex.quote(str(STATE.workspace))}"
    receipt = shlex.quote(f"{out / 'receipts'}/CLAIM.json")
    keys = shlex.quote(str(out / "ledger-keys.json"))
    console.print(
        f"next: [bold]{escape(claims)} status[/bold]   (each claim: state, risk"
        " score, reason)",
        highlight=False,
        soft_wrap=True,
        markup=True,
    )
    console.print(
        f"      [bold]{escape(claims)} ledger verify-receipt {escape(receipt)}"
        f" --keys-file {escape(keys)}[/bold]",
        highlight=False,
        soft_wrap=True,
        markup=True,
    )


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -- status --------------------------------------------------------------------


@app.command()
def status(
    claim_id: Annotated[str | None, typer.Argument(help="One claim's id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the claims, or show one claim's timeline of states and times.

    The list gives each claim's state, amounts, joint risk score (`risk`:
    `0.51!` at or above the threshold, `0.48` below it, `-` none computed)
    and reason; one claim's view says why a claim has no score. Below 140
    columns a claim is listed by the first 8 characters of its id, which
    `claims status ID` accepts.

    Example: claims status 1b4e28ba-2fa1-11d2-883f-0016d3cca427
    """
    from sqlmodel import Session, select

    from claims.review import describe_risk
    from claims.store import Claim, Store

    store = Store(require_store().database_url)
    with Session(store.engine) as session:
        if claim_id is None:
            query = select(Claim).order_by(Claim.submitted_at)  # type: ignore[arg-type]
            claims = list(session.exec(query))
            rows = [_claim_row(claim) for claim in claims]
            if as_json:
                emit_json(rows)
                return
            _print_claims(rows)
            return
        claim = store.get_claim(session, claim_id)
        # By the full id: `claim_id` may be a prefix.
        events = store.events(session, claim.id)
        data = _claim_row(claim)
        data["timeline"] = [
            {"state": e.state, "at": e.at.isoformat(), "reason": e.reason}
            for e in events
        ]
    if as_json:
        emit_json(data)
        return
    console.print(
        f"claim [bold]{escape(data['id'])}[/bold] at {escape(data['insurer'])}:"
        f" [bold]{escape(data['state'])}[/bold]",
        markup=True,
    )
    if data["reason"]:
        console.print(f"reason: {data['reason']}")
    console.print(
        f"billed {data['billed'] or '-'}  payable {data['payable'] or '-'}"
        f"  duplicate elsewhere: {data['duplicate']}"
    )
    risk = describe_risk(
        data["risk_score"],
        data["risk_flagged"],
        state=data["state"],
        reached={event["state"] for event in data["timeline"]},
        duplicate=data["duplicate"],
    )
    console.print(f"joint risk score: {risk}", highlight=False)
    table = Table(title="timeline")
    table.add_column("state")
    table.add_column("at (UTC)")
    table.add_column("reason")
    for event in data["timeline"]:
        table.add_row(event["state"], event["at"], event["reason"] or "")
    console.print(table)


def _print_claims(rows: list[dict[str, Any]]) -> None:
    """The list of `claims status`: every claim, with its risk, at any width.

    `rows` are `_claim_row`s. Every column but the reason keeps its width
    (the risk is at most five characters, `claims.review.risk_mark`); the
    reason wraps. When every claim has the same currency the title names it
    and the amounts go without it.
    """
    from claims.review import RISK_THRESHOLD, risk_mark

    currency = payer.common_currency([row["currency"] for row in rows])
    title = f"{len(rows)} claims"
    if currency:
        title += f" (amounts in {currency})"
    table = payer.listing_table(title, payer.RISK_CAPTION.format(RISK_THRESHOLD))
    table.add_column("claim", no_wrap=True)
    table.add_column("insurer", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("billed", justify="right", no_wrap=True)
    table.add_column("payable", justify="right", no_wrap=True)
    table.add_column("risk", no_wrap=True)
    table.add_column("reason")
    suffix = f" {currency}" if currency else ""
    for row in rows:
        table.add_row(
            payer.short_id(row["id"]),
            row["insurer"],
            row["state"],
            (row["billed"] or "").removesuffix(suffix),
            (row["payable"] or "").removesuffix(suffix),
            risk_mark(row["risk_score"], row["risk_flagged"]),
            row["reason"] or "",
        )
    console.print(table)


def _claim_row(claim: Any) -> dict[str, Any]:
    from claims.store import from_cents

    def money(value: int | None) -> str | None:
        return (
            None
            if value is None
            else f"{from_cents(value)} {claim.currency or ''}".strip()
        )

    return {
        "id": claim.id,
        "insurer": claim.insurer_id,
        "state": claim.state,
        "reason": claim.reason,
        "billed": money(claim.billed_cents),
        "payable": money(claim.payable_cents),
        "currency": claim.currency,
        "duplicate": claim.duplicate,
        # A score not computed (a rejected claim, fewer than 3 insurers) is
        # None and never flagged: the flag is False, not None, for it too.
        "risk_score": claim.risk_score,
        "risk_flagged": bool(claim.risk_flagged),
        "submitted_at": claim.submitted_at.isoformat(),
        "settled_at": claim.settled_at.isoformat() if claim.settled_at else None,
    }


# -- ledger --------------------------------------------------------------------


# Each command group lives in its own module and adds itself here.
for _group in (hospital, wallet, vc, insurer, people, payer, ledger):
    _group.register(app)


# -- entry point ---------------------------------------------------------------


def _error_bases() -> tuple[type[Exception], ...]:
    from credentials.errors import CredentialError
    from ledger.errors import LedgerError
    from mpc_lite.errors import MpcError

    return (ClaimsError, CredentialError, LedgerError, MpcError)


def main() -> None:
    """Run the CLI; turn our errors into a message and an exit code."""
    try:
        app(standalone_mode=True)
    except SystemExit:
        raise
    except _error_bases() as exc:
        if STATE.debug:
            raise
        errors.print(
            f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True
        )
        remedy = getattr(exc, "remedy", None)
        if remedy:
            errors.print(
                f"[yellow]what to do:[/yellow] {escape(str(remedy))}",
                highlight=False,
                markup=True,
            )
        sys.exit(3 if isinstance(exc, NotFound) else 1)
    except SQLAlchemyError as exc:
        if STATE.debug:
            raise
        said = str(getattr(exc, "orig", ""))  # the driver's own message
        if "readonly" in said:
            problem = ": this command writes to it, and it may only be read here"
            remedy = (
                "make the store writable for this user, or run as one who may write it"
            )
        elif "unable to open database file" in said:
            problem = (
                ": SQLite cannot open its file; the folder it is in may be missing"
                " or not writable"
            )
            remedy = "check the workspace folder, or the path in CLAIMS_DATABASE_URL"
        elif isinstance(
            exc, OperationalError
        ) and not STATE.settings().database_url.startswith("sqlite"):
            problem = (
                f" ({type(exc).__name__}): the database server could not be reached"
                " or refused the connection"
            )
            remedy = (
                "check that the server is running and CLAIMS_DATABASE_URL's host,"
                " port, user and database; run with --debug for details"
            )
        else:
            problem = (
                f" ({type(exc).__name__}): its file or database may be damaged or"
                " from another version"
            )
            remedy = (
                "check the workspace's claims.db or CLAIMS_DATABASE_URL;"
                " run with --debug for details"
            )
        errors.print(
            f"[red]error:[/red] the claims store cannot be used{problem}",
            highlight=False,
            markup=True,
        )
        errors.print(
            f"[yellow]what to do:[/yellow] {remedy}", highlight=False, markup=True
        )
        sys.exit(1)
    except OSError as exc:
        # A path the user gave that is a folder, a file where a folder must
        # be, a folder they may not write: their mistake, said as such.
        if STATE.debug:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        reason = exc.strerror or type(exc).__name__
        errors.print(
            f"[red]error:[/red] cannot use{escape(where)}: {escape(reason)}",
            highlight=False,
            markup=True,
        )
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if STATE.debug:
            raise
        errors.print(
            f"[red]internal error:[/red] {type(exc).__name__}; run again with --debug"
            " and report it",
            highlight=False,
            markup=True,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
