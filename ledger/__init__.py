"""The settlement ledger: a cosigned RFC 9162 transparency log.

Modules:

- `ledger.merkle`: RFC 9162 hashing, proof shapes and proof verification.
- `ledger.note`: C2SP signed notes, checkpoints and witness cosignatures.
- `ledger.log`: `TransparencyLog`, stored in the claims database.
- `ledger.receipt`: `verify_receipt`, offline.
- `ledger.witness`: `Witness`, which cosigns only consistent checkpoints,
  and the C2SP tlog-witness request body format.
- `ledger.service`: the witness as a FastAPI router (``add-checkpoint``).
- `ledger.witness_client`: `RemoteWitness`, a witness reached over HTTP.
- `ledger.audit`: `audit`, every finding of a full re-check of a stored log.
- `ledger.records`: typed, versioned record builders (no patient data).
- `ledger.cli`: the ``claims ledger`` commands that need no store.

Importing the package registers the ledger tables on ``SQLModel.metadata``.
"""

from __future__ import annotations

from ledger import _tables  # noqa: F401  (registers the ledger_ tables)
from ledger.errors import LedgerError

__all__ = ["LedgerError"]
