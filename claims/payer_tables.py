"""Store tables of the payer core (review decisions, corrections).

Kept apart from `claims.store` so that the payer core can grow its own tables;
`claims.store` imports this module so that `create_all` sees them.
"""

from __future__ import annotations

__all__: list[str] = []
