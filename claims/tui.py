"""`claims track`: the claimant's terminal view of their claims, updated live.

The app lists my claims (state, amounts, whether a person reviews it), and for
the highlighted one its timeline and whether its settlement receipt verifies
against the consortium's ledger keys. It polls a `ClaimSource` every few
seconds: the insurer's gateway over HTTP (`GatewaySource`) or, in embedded
mode, the local store (`StoreSource`). Keyboard first; the footer lists keys.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from rich.text import Text
from sqlmodel import Session, select
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Header, Static

from claims.consortium import Consortium
from claims.errors import ClaimsError
from claims.gateway.app import claim_view
from claims.gateway.client import GatewayClient
from claims.store import Claim, Settlement
from ledger.errors import LedgerError
from ledger.receipt import verify_receipt

__all__ = ["ClaimSource", "ClaimsTracker", "GatewaySource", "StoreSource"]

logger = logging.getLogger(__name__)

COLUMNS = ("claim", "insurer", "state", "billed", "payable", "review", "receipt")


class ClaimSource(Protocol):
    """Where the tracker reads a claimant's claims from."""

    def claims(self) -> list[dict[str, Any]]:
        """My claims, newest first, as the gateway's `ClaimView` JSON."""
        ...

    def claim(self, claim_id: str) -> dict[str, Any]:
        """One claim with its `timeline`."""
        ...

    def receipt(self, claim_id: str) -> dict[str, Any] | None:
        """The settlement receipt, or None when there is none yet."""
        ...


class GatewaySource:
    """Claims over HTTP from an insurer's gateway (`claims track --insurer-url`)."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    def claims(self) -> list[dict[str, Any]]:
        return self.client.claims()

    def claim(self, claim_id: str) -> dict[str, Any]:
        return self.client.claim(claim_id)

    def receipt(self, claim_id: str) -> dict[str, Any] | None:
        try:
            return self.client.receipt(claim_id)
        except ClaimsError:
            return None


class StoreSource:
    """Claims of one claimant DID straight from the local store (embedded mode)."""

    def __init__(
        self, consortium: Consortium, did: str, insurer_id: str | None = None
    ) -> None:
        self.consortium = consortium
        self.did = did
        self.insurer_id = insurer_id

    def claims(self) -> list[dict[str, Any]]:
        query = select(Claim).where(Claim.claimant_did == self.did)
        if self.insurer_id is not None:
            query = query.where(Claim.insurer_id == self.insurer_id)
        with Session(self.consortium.store.engine) as session:
            rows = session.exec(
                query.order_by(Claim.submitted_at.desc())  # type: ignore[attr-defined]
            ).all()
        return [claim_view(self.consortium, c).model_dump(mode="json") for c in rows]

    def claim(self, claim_id: str) -> dict[str, Any]:
        with Session(self.consortium.store.engine) as session:
            claim = self.consortium.store.get_claim(session, claim_id)
        view = claim_view(self.consortium, claim, timeline=True)
        return view.model_dump(mode="json")

    def receipt(self, claim_id: str) -> dict[str, Any] | None:
        with Session(self.consortium.store.engine) as session:
            row = session.exec(
                select(Settlement).where(Settlement.claim_id == claim_id)
            ).first()
        if row is None:
            return None
        try:
            return self.consortium.ledger.receipt(row.ledger_index)
        except LedgerError:
            return None


def receipt_status(receipt: dict[str, Any] | None, trust: dict[str, Any] | None) -> str:
    """`verified`, `not verified: <step>`, or why it could not be checked."""
    if receipt is None:
        return "no receipt yet"
    if trust is None:
        return "not checked: no ledger keys"
    try:
        verify_receipt(
            receipt, trust["keys"], min_cosignatures=int(trust["min_cosignatures"])
        )
    except LedgerError as exc:
        return f"not verified: {getattr(exc, 'step', 'receipt')}"
    return "verified"


def _money(view: dict[str, Any], field: str) -> str:
    value = view.get(field)
    return "-" if value is None else f"{value} {view.get('currency') or ''}".strip()


class ClaimsTracker(App[None]):
    """The claimant's live list of claims, with a timeline and receipt check.

    Args:
        source: where the claims come from.
        trust: the ledger trust file (`keys`, `min_cosignatures`) receipts
            are verified against; None, receipts are shown unchecked.
        interval: seconds between polls; 0 polls only on `r`.
        title: the header's subtitle (who and where).
    """

    TITLE = "claims track"
    CSS = """
    DataTable { height: 1fr; }
    #detail { height: auto; max-height: 50%; border-top: solid $accent; padding: 0 1; }
    #status { height: 1; color: $text-muted; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(
        self,
        source: ClaimSource,
        *,
        trust: dict[str, Any] | None = None,
        interval: float = 2.0,
        title: str = "",
    ) -> None:
        super().__init__()
        self.source = source
        self.trust = trust
        self.interval = interval
        self.sub_title = title
        self.views: list[dict[str, Any]] = []
        self.receipts: dict[str, str] = {}
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical():
            yield DataTable(id="claims", cursor_type="row", zebra_stripes=True)
            yield Static("", id="detail")
            yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.action_refresh()
        if self.interval > 0:
            self.set_interval(self.interval, self.action_refresh)

    # -- polling -------------------------------------------------------------

    def action_refresh(self) -> None:
        """Poll the source and redraw; a failure is shown, never raised."""
        if self._exit_requested():
            return
        try:
            self.views = self.source.claims()
            self.error = None
        except ClaimsError as exc:
            self.error = str(exc)
        self._redraw()

    def _receipt(self, view: dict[str, Any]) -> str:
        if view["state"] != "settled":
            return "-"
        known = self.receipts.get(view["id"])
        if known == "verified":
            return known
        try:
            status = receipt_status(self.source.receipt(view["id"]), self.trust)
        except ClaimsError:
            status = "no receipt yet"
        self.receipts[view["id"]] = status
        return status

    def _redraw(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for view in self.views:
            cells = (
                view["id"][:8],
                view["insurer"],
                view["state"],
                _money(view, "billed"),
                _money(view, "payable"),
                "in review" if view["in_review"] else "-",
                self._receipt(view),
            )
            table.add_row(*(Text(cell) for cell in cells), key=view["id"])
        if self.views:
            table.move_cursor(row=min(row, len(self.views) - 1))
        status = f"{len(self.views)} claims"
        if self.error:
            status += f"  |  {self.error}"
        self.query_one("#status", Static).update(Text(status))
        self._show_detail()

    # -- the highlighted claim -------------------------------------------------

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        if self.is_running and not self._exit_requested():
            self._show_detail()

    def _exit_requested(self) -> bool:
        try:
            self.query_one("#detail", Static)
        except NoMatches:
            return True
        return False

    def _show_detail(self) -> None:
        detail = self.query_one("#detail", Static)
        table = self.query_one(DataTable)
        if not self.views or table.cursor_row >= len(self.views):
            detail.update(Text("No claims yet."))
            return
        summary = self.views[table.cursor_row]
        try:
            view = self.source.claim(summary["id"])
        except ClaimsError as exc:
            detail.update(Text(f"claim {summary['id']}: {exc}"))
            return
        lines = [f"claim {view['id']}  ({view['state']})"]
        if view.get("reason"):
            lines.append(f"reason: {view['reason']}")
        for entry in view.get("timeline") or []:
            lines.append(f"  {entry['at'][:19].replace('T', ' ')}  {entry['state']}")
        if view["state"] == "settled":
            lines.append(f"receipt: {self.receipts.get(view['id'], 'not checked')}")
        detail.update(Text("\n".join(lines)))

    def action_cursor_down(self) -> None:
        self.query_one(DataTable).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DataTable).action_cursor_up()
