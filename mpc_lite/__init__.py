"""mpc_lite: the consortium's private joint fraud check.

Insurers compare claims and combine claimant features without handing their
data to each other:

* `mpc_lite.psi`: private duplicate detection (n-party Diffie-Hellman PSI
  over ristretto255) -- is this treatment already claimed elsewhere?
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
