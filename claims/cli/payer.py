"""`claims review`, `claims adjudicate` and `claims metrics`: the payer's desk.

`review` lists the claims held for a person and decides them (approve pays
at once, deny records the reason); `adjudicate` prices one FHIR Claim
against a policy without touching any store; `metrics` reports turnaround,
straight-through rate, review backlog and denial rate. The helpers that
shape a list of claims to the terminal (`listing_table`, `short_id`,
`common_currency`) serve `claims status` too.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from claims.cli._common import console, emit_json, errors, open_consortium
from claims.errors import NotFound

__all__ = [
    "RISK_CAPTION",
    "common_currency",
    "listing_table",
    "register",
    "review_app",
    "short_id",
]

review_app = typer.Typer(
    name="review",
    help="Decide the claims held for review: list, show, approve, deny.",
    no_args_is_help=True,
    add_completion=False,
)


def _consortium() -> Any:
    return open_consortium()


def _default_reviewer() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return ""


Reviewer = Annotated[
    str | None,
    typer.Option(help="Who decides (a staff id); default: $USER."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ClaimId = Annotated[str, typer.Argument(help="The claim's id.")]


# -- listings of claims (also `claims status`) ---------------------------------------

NARROW = 100
"""Below this many columns a listing of claims drops its vertical rules."""
WIDE = 140
"""From this many columns on a listing of claims shows whole claim ids."""


def listing_table(title: str, caption: str | None = None) -> Table:
    """An empty table for a list of claims, shaped to the terminal's width.

    From `NARROW` columns on it is the usual boxed table; below, it has no
    vertical rules and one shared space of padding between columns, which
    leaves the one column that wraps (the reason) about twenty more
    characters at 80 columns than the boxed table would.
    """
    if console.width >= NARROW:
        return Table(title=title, caption=caption)
    return Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )


def short_id(claim_id: str) -> str:
    """The whole id from `WIDE` columns on; else its first 8 characters.

    `claims status ID` and the `claims review` commands accept such a
    prefix when it is unique.
    """
    return claim_id if console.width >= WIDE else claim_id[:8]


def common_currency(currencies: list[str | None]) -> str | None:
    """The one currency of every amount listed, if there is exactly one.

    A listing then names it once, in its title, and prints bare amounts.
    """
    found = {currency for currency in currencies if currency}
    return found.pop() if len(found) == 1 else None


def _held_for(seconds: float) -> str:
    """How long a claim has been held, in at most four characters: `45s`, `3d`."""
    if seconds < 100:
        return f"{seconds:.0f}s"
    if seconds < 100 * 60:
        return f"{seconds // 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600:.0f}h"
    return f"{seconds // 86400:.0f}d"


RISK_CAPTION = (
    "risk: joint score across insurers, ! at or above the threshold {:g}, - none"
)
"""The legend of a listing's `risk` column (`claims.review.risk_mark`)."""


# -- review ----------------------------------------------------------------------


@review_app.command("list")
def review_list(
    insurer: Annotated[
        str | None, typer.Option(help="Only this insurer's claims.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the claims waiting for review, oldest submission first.

    Each with its joint risk score (`risk`: `0.51!` at or above the
    threshold, `0.48` below it, `-` none computed); `claims review show ID`
    says why a claim has none. Below 140 columns a claim is shown by the
    first 8 characters of its id, which every review command accepts.

    Example: claims review list --insurer insurer-1
    """
    from claims.review import RISK_THRESHOLD, list_reviews, risk_mark

    items = list_reviews(_consortium(), insurer)
    if as_json:
        emit_json([item.to_json() for item in items])
        return
    currency = common_currency([item.currency for item in items])
    title = f"{len(items)} claims in review"
    if currency:
        title += f" (amounts in {currency})"
    table = listing_table(title, RISK_CAPTION.format(RISK_THRESHOLD))
    # Only the reason wraps; on a narrow terminal the type is cut short.
    narrow = console.width < NARROW
    table.add_column("claim", no_wrap=True)
    table.add_column("insurer", no_wrap=True)
    table.add_column("type", no_wrap=True, max_width=6 if narrow else None)
    table.add_column("billed", justify="right", no_wrap=True)
    table.add_column("payable", justify="right", no_wrap=True)
    table.add_column("risk", no_wrap=True)
    table.add_column("held", justify="right", no_wrap=True)
    table.add_column("why")
    for item in items:
        unit = "" if currency else f" {item.currency or ''}".rstrip()
        table.add_row(
            short_id(item.claim_id),
            item.insurer_id,
            item.claim_type or "",
            f"{item.billed}{unit}" if item.billed else "-",
            f"{item.payable}{unit}" if item.payable else "-",
            risk_mark(item.risk_score, item.risk_flagged),
            _held_for(item.age_seconds),
            item.reason or "",
        )
    console.print(table)


@review_app.command("show")
def review_show(claim_id: ClaimId, as_json: AsJson = False) -> None:
    """Show one claim's joint risk score, lines, timeline and review decisions.

    The id may be a unique prefix of 8 or more characters.

    Example: claims review show 1b4e28ba-2fa1-11d2-883f-0016d3cca427
    """
    from claims.review import describe_risk, show

    data = show(_consortium(), claim_id)
    if as_json:
        emit_json(data)
        return
    claim = data["claim"]
    console.print(
        f"claim [bold]{escape(claim['id'])}[/bold] at {escape(claim['insurer'])}:"
        f" [bold]{escape(claim['state'])}[/bold]",
        markup=True,
    )
    if claim["reason"]:
        console.print(f"why: {claim['reason']}", highlight=False)
    risk = describe_risk(
        claim["risk_score"],
        claim["risk_flagged"],
        state=claim["state"],
        reached={event["state"] for event in data["timeline"]},
        duplicate=claim["duplicate_elsewhere"],
    )
    console.print(f"joint risk score: {risk}", highlight=False)
    console.print(
        f"{claim['claim_type']} on {claim['service_date']}: billed"
        f" {claim['billed']} {claim['currency']}, payable {claim['payable']},"
        f" duplicate elsewhere: {claim['duplicate_elsewhere']}",
        highlight=False,
    )
    lines = Table(title="lines")
    for column in ("seq", "code", "submitted", "benefit", "reasons"):
        lines.add_column(column)
    for line in data["lines"]:
        lines.add_row(
            str(line["sequence"]),
            line["code"] or "",
            str(line["submitted"]),
            str(line["benefit"]),
            "; ".join(line["reasons"]),
        )
    console.print(lines)
    timeline = Table(title="timeline")
    for column in ("state", "at (UTC)", "reason"):
        timeline.add_column(column)
    for event in data["timeline"]:
        timeline.add_row(event["state"], event["at"], event["reason"] or "")
    console.print(timeline)
    for decision in data["decisions"]:
        console.print(
            f"{decision['decision']} by {decision['reviewer']} at"
            f" {decision['decided_at']} ({decision['reason_code']}, ledger entry"
            f" {decision['ledger_index']}): {decision['note'] or ''}",
            highlight=False,
        )


def _print_decision(decision: Any, as_json: bool) -> None:
    data = {
        "review_id": decision.id,
        "claim_id": decision.claim_id,
        "reviewer": decision.reviewer,
        "decision": decision.decision,
        "reason_code": decision.reason_code,
        "note": decision.note,
        "payable_before_cents": decision.payable_cents_before,
        "payable_after_cents": decision.payable_cents_after,
        "decided_at": decision.decided_at.isoformat(),
        "ledger_index": decision.ledger_index,
    }
    if as_json:
        emit_json(data)
        return
    console.print(
        f"claim {escape(decision.claim_id)}: [bold]{escape(decision.decision)}[/bold]"
        f" by {escape(decision.reviewer)} ({escape(decision.reason_code)}); ledger"
        f" entry {decision.ledger_index}",
        highlight=False,
        markup=True,
    )


@review_app.command("approve")
def review_approve(
    claim_id: ClaimId,
    note: Annotated[
        str | None, typer.Option(help="Why it may be paid (kept off the ledger).")
    ] = None,
    reviewer: Reviewer = None,
    as_json: AsJson = False,
) -> None:
    """Approve a claim in review: re-price it on today's accumulators and pay it.

    Example: claims review approve 1b4e28ba --note "a second episode"
    """
    from claims.review import approve

    decision = approve(_consortium(), claim_id, reviewer or _default_reviewer(), note)
    _print_decision(decision, as_json)


@review_app.command("deny")
def review_deny(
    claim_id: ClaimId,
    reason: Annotated[
        str, typer.Option(help="Why it is denied (stored; kept off the ledger).")
    ],
    reviewer: Reviewer = None,
    as_json: AsJson = False,
) -> None:
    """Deny a claim in review; the reason is stored with the decision.

    Example: claims review deny 1b4e28ba --reason "paid by insurer-2"
    """
    from claims.review import deny

    decision = deny(_consortium(), claim_id, reviewer or _default_reviewer(), reason)
    _print_decision(decision, as_json)


# -- adjudicate (dry run) -----------------------------------------------------------


def adjudicate_command(
    claim_file: Annotated[
        Path, typer.Argument(help="A FHIR R4 Claim, or a Bundle holding one (JSON).")
    ],
    policy: Annotated[
        Path | None,
        typer.Option(
            help="A policy file (TOML); default: claims/examples/insurer-1.toml,"
            " the plan of the demo's first insurer."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the FHIR ClaimResponse JSON.")
    ] = False,
) -> None:
    """Adjudicate one FHIR Claim against a policy; store nothing (a dry run).

    Prints the ClaimResponse, or the refusal with each field path at fault
    and exits 1.

    Example: claims adjudicate claim.json --policy plan.toml --json
    """
    from claims.adjudication import dry_run
    from claims.errors import ConfigError
    from claims.fhir_intake import ClaimRefused
    from claims.policy import Policy, example_policy_path
    from claims.store import utcnow
    from credentials.errors import MalformedDocument
    from credentials.parse import read_user_file

    plan = Policy.from_toml(policy or example_policy_path(1))
    try:
        raw = read_user_file(claim_file, what=str(claim_file))
    except MalformedDocument as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise NotFound(
            f"cannot read {claim_file} ({exc.strerror})",
            remedy="pass the path of a FHIR Claim JSON file",
        ) from exc
    try:
        decision, response = dry_run(raw, plan, created=utcnow())
    except ClaimRefused as exc:
        _print_refusal(exc, as_json)
        raise typer.Exit(1) from exc
    if as_json:
        emit_json(response)
        return
    _print_response(decision, response)


def _print_refusal(exc: Any, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "refused": True,
                    "claim": exc.claim_id,
                    "errors": [
                        {"path": e.path, "message": e.message} for e in exc.errors
                    ],
                },
                indent=2,
            )
        )
        return
    errors.print(
        f"[red]refused:[/red] Claim/{escape(exc.claim_id)}",
        highlight=False,
        markup=True,
    )
    for error in exc.errors:
        errors.print(f"  {error.path}: {error.message}", highlight=False)


def _print_response(decision: Any, response: dict[str, Any]) -> None:
    result = decision.adjudication
    currency = result.currency
    table = Table(
        title=f"ClaimResponse for Claim/{decision.treatment.invoice}"
        f" under {result.plan_id} ({currency})"
    )
    table.add_column("line", justify="right")
    table.add_column("code")
    for column in ("submitted", "eligible", "copay", "deduct.", "coins.", "limit"):
        table.add_column(column, justify="right")
    table.add_column("benefit", justify="right", style="bold")
    for line in result.lines:
        table.add_row(
            str(line.sequence),
            line.code.rpartition("|")[2],
            str(line.submitted),
            str(line.eligible),
            str(line.copay),
            str(line.deductible),
            str(line.coinsurance),
            str(line.limited),
            str(line.benefit),
        )
    console.print(table)
    for line in result.lines:
        if line.reasons:
            reasons = "; ".join(reason.display for reason in line.reasons)
            console.print(f"line {line.sequence}: {reasons}", highlight=False)
    console.print(
        f"{response['disposition']}: payable {result.payable} {currency} of"
        f" {result.submitted} submitted; member share {result.member_share}",
        highlight=False,
    )


# -- metrics -------------------------------------------------------------------------


def metrics_command(as_json: AsJson = False) -> None:
    """Turnaround p50/p95, straight-through rate, review backlog, denial rate.

    Per insurer and overall, read from the store's state changes.

    Example: claims metrics --json
    """
    from claims.metrics import collect

    consortium = _consortium()
    overall, per_insurer = collect(consortium.store, consortium.clock())
    if as_json:
        emit_json(
            {
                "overall": overall.to_json(),
                "insurers": {m.insurer: m.to_json() for m in per_insurer},
            }
        )
        return
    table = Table(title="claims metrics")
    table.add_column("measure")
    for metrics in [overall, *per_insurer]:
        table.add_column(metrics.insurer or "all", justify="right")
    rows = (
        ("claims", "claims"),
        ("settled", "settled"),
        ("denied", "denied"),
        ("in review", "in_review"),
        ("rejected", "rejected"),
        ("pending", "pending"),
        ("turnaround p50 (s)", "turnaround_p50_s"),
        ("turnaround p95 (s)", "turnaround_p95_s"),
        ("straight-through rate", "straight_through_rate"),
        ("denial rate", "denial_rate"),
        ("review backlog oldest (s)", "review_backlog_oldest_s"),
        ("review backlog median (s)", "review_backlog_median_s"),
    )
    columns = [overall, *per_insurer]
    for label, name in rows:
        table.add_row(label, *(_cell(getattr(m, name)) for m in columns))
    console.print(table)


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def register(root: typer.Typer) -> None:
    """Add this group's commands to the root command."""
    root.add_typer(review_app)
    root.command("adjudicate")(adjudicate_command)
    root.command("metrics")(metrics_command)
