"""mpc_lite: the consortium's private joint fraud check.

Insurers compare claims and combine claimant features without handing their
data to each other:

* `mpc_lite.psi`: private duplicate detection (n-party Diffie-Hellman PSI
  over ristretto255) -- is this treatment already claimed elsewhere?
* `mpc_lite.incremental`: the same check for new claims against history,
  with long-lived keys per epoch;
* `mpc_lite.aggregate` and `mpc_lite.score`: claimant features summed over
  all insurers by additive secret sharing, scored only by the requester;
* `mpc_lite.keys`: the canonical encodings those comparisons match on;
* `mpc_lite.audit`: the job record that goes on the ledger;
* `mpc_lite.group`, `mpc_lite.transport`, `mpc_lite.errors`: the group,
  the signed messages, the errors.

Each protocol module states what every party learns and what a deviating
party can do.
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
