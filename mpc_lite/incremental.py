"""Incremental duplicate checks: new claims against history, within an epoch.

A full `mpc_lite.psi.duplicate_check` re-blinds every party's whole input
under fresh keys. An `Epoch` instead keeps each party's scalars for many
checks, and each checking party t keeps `history`: the tags, under K*z
(under K with two members, who have no mask), of every element the
*other* parties have sent into t's checks so far. A new batch then costs
what the batch costs, never a pass over history: per new element, n+1
scalar multiplications for its own query lap (with the re-randomiser
below) and n+1 for each other member's check it is a reference in (3 and
2 with two members).

`Epoch.check(batch)` runs the `mpc_lite.psi` protocol on the batch with the
epoch's scalars; each party's new elements are checked against the others'
history and the others' elements in the same batch, then join the history
the other parties check against. Elements a party sent before are not
re-flagged when another party later sends the same one: the later
claim is the one flagged. A party's own earlier elements never count.

Every member is a checking party in every batch, asking or not: its
history must take in the others' new elements even when it has none of
its own. A member with an empty batch skips only its query lap.

A history grows with the epoch, so a member may keep it out of memory: any
`mpc_lite.psi.TagSet` will do (`histories`; the claims flow keeps them in
its database, `flows.epoch_store`). Where it is kept changes nothing below:
it never leaves the member, and its tags are blinded under scalars that
live in memory only, so a history left on disk after its epoch is dropped
links to nothing.

Key rotation
------------
Start a new `Epoch` (fresh scalars everywhere) on a fixed schedule, such as
monthly, and whenever the membership changes: a leaving member holds
scalars of every tag, and a joining member's scalar is missing from all of
them. A new epoch starts with empty histories; to keep checking against
past claims, run one `check` with the history that must carry over (the
full cost, once). Tags from different epochs cannot be linked.

What the trade-off leaks (beyond `mpc_lite.psi`)
-----------------------------------------------
Within an epoch tags are stable, so time becomes a side channel:

* the checking party t sees each batch's reference lists labelled by
  sender and can compare them with every earlier batch: it learns how many
  of j's new elements equal elements earlier sent by l (or by j itself;
  with two members that is all there is), across the epoch;
* if t queries the same element again after each batch, it learns in
  which batch a matching element arrived, and so which party sent it when
  that batch held one party's elements only. Queries are re-randomised so
  relays cannot see a repeated query, but t itself can always do this.
  Batches that always carry every party's new claims together, and short
  epochs, limit it;
* with three or more members, t's helper sees the merged batches under K
  and learns when an element reappears in a later batch (a count per
  batch, not which element);
* a relay sees j's reference elements under partial keys that are stable
  over the epoch, so it learns when j sends the same element twice.

A fresh-key `duplicate_check` has none of these.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from mpc_lite.errors import InvalidInput
from mpc_lite.psi import EpochState, Party, TagSet, run_rounds
from mpc_lite.transport import InProcessTransport, Transport

__all__ = ["Epoch"]

logger = logging.getLogger(__name__)


class Epoch:
    """Long-lived scalars and histories of a fixed set of members.

    `members` gives the names and signing keys (their elements are not
    used); `transport` defaults to an `InProcessTransport`; `histories`
    gives, per member, where it keeps its history (in memory when omitted).
    """

    def __init__(
        self,
        members: list[Party],
        transport: Transport | None = None,
        *,
        epoch_id: str | None = None,
        histories: Mapping[str, TagSet] | None = None,
    ) -> None:
        names = [member.name for member in members]
        if len(members) < 2 or len(set(names)) != len(names):
            raise InvalidInput("an epoch needs at least two distinctly named members")
        self.epoch_id = epoch_id or secrets.token_hex(8)
        self._members = {member.name: member for member in members}
        self._roster = {member.name: member.verify_key for member in members}
        kept = histories or {}
        self._states = {
            name: EpochState.generate(sorted(names), kept.get(name)) for name in names
        }
        self._transport = transport or InProcessTransport()
        self._jobs = 0

    def history_size(self, name: str) -> int:
        """How many others' tags `name` holds for its checks (a count only)."""
        return len(self._states[name].history)

    def check(self, batch: dict[str, list[bytes]]) -> dict[str, list[bool]]:
        """Check each member's new elements; every member must be named.

        Returns, per member, one flag per new element: True when another
        member holds it now or sent it earlier in this epoch.
        """
        if sorted(batch) != sorted(self._members):
            raise InvalidInput("a batch must name every member of the epoch")
        self._jobs += 1
        job_id = f"{self.epoch_id}/{self._jobs}"
        names = sorted(self._members)
        askers = [name for name in names if batch[name]]
        sessions = {}
        for name in names:
            member = self._members[name]
            party = Party(name, batch[name], signing_key=member._signing_key)
            sessions[name] = party.open_session(
                job_id, self._roster, epoch=self._states[name], askers=askers
            )
        run_rounds(sessions, self._transport)
        logger.debug("epoch %s: job %s checked", self.epoch_id, self._jobs)
        return {name: sessions[name].result() for name in names}
