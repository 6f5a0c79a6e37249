"""mpc_lite: the consortium's private joint fraud check.

Insurers compare claims and combine claimant features without handing their
data to each other:

* `mpc_lite.psi`: private duplicate detection (n-party Diffie-Hellman PSI
  over ristretto255) -- is this treatment already claimed elsewhere?
* `mpc_lite.incremental`: the same check for new claims against history,
  with long-lived keys per epoch;
* `mpc_lite.aggregate` and `mpc_lite.score`: claimant features summed over
  all insurers by additive secret sharing, scored only by the requester;
* `mpc_lite.fraud`: the joint check of one batch (`joint_fraud_check`:
  duplicates, scores and audit records), and `ScoringEpoch`, the scores of
  batch after batch that the claims flow uses beside `mpc_lite.incremental`;
* `mpc_lite.service`: the same jobs between insurer services over HTTP;
* `mpc_lite.keys`: the canonical encodings those comparisons match on;
* `mpc_lite.audit`: the job record that goes on the ledger;
* `mpc_lite.group`, `mpc_lite.transport`, `mpc_lite.errors`: the group,
  the signed messages, the errors.

Each protocol module states exactly what every party learns and what a
deviating party can do; in short (semi-honest parties, no collusion):

* duplicate check (`mpc_lite.psi`): a requester learns one bit per own
  claim (held elsewhere or not; with three or more parties, not where),
  plus the sizes of the other parties' sets and of their pairwise
  overlaps; its helper learns the requester's query count; relays learn
  list lengths;
* incremental checks (`mpc_lite.incremental`, `ScoringEpoch`): within an
  epoch, tags are stable, so arrival times and repeated questions about one
  claimant leak as described there and in `mpc_lite.aggregate`;
* aggregation and score (`mpc_lite.aggregate`, `mpc_lite.fraud`): a
  requester learns feature sums over at least `min_parties` insurers (or
  that fewer hold the claimant) and its own scores; every other insurer
  learns which of its own claimants are asked about and with which window
  end;
* everywhere: a deviating party can falsify its own inputs and shift
  results, and can probe for a guessed element by adding it to its input;
  it cannot make a message from another member pass as genuine, and a
  refused or missing message stops the job naming the party and round.
"""

from mpc_lite.errors import (
    InvalidInput,
    InvalidPoint,
    MpcError,
    PartyUnavailable,
    ProtocolError,
)

__all__ = [
    "InvalidInput",
    "InvalidPoint",
    "MpcError",
    "PartyUnavailable",
    "ProtocolError",
]
