"""Errors of the `claims` package.

Every error the package raises on purpose derives from `ClaimsError`; the CLI
catches that one base, prints its message and remedy, and exits non-zero
without a traceback (unless `--debug` is given).

    ClaimsError
    ├── IllegalTransition   a claim asked to move where its state forbids
    ├── ConfigError         settings or a policy file that cannot be used
    └── NotFound            an id that the store does not hold
"""

from __future__ import annotations

__all__ = ["ClaimsError", "ConfigError", "IllegalTransition", "NotFound"]


class ClaimsError(Exception):
    """Base of every error the claims package raises on purpose.

    `remedy`, when set, tells the user what to do about it.
    """

    remedy: str | None = None

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        if remedy is not None:
            self.remedy = remedy


class IllegalTransition(ClaimsError):
    """Raised when a claim is asked to move to a state its current one forbids."""


class ConfigError(ClaimsError):
    """Raised when settings or a configuration file cannot be used."""


class NotFound(ClaimsError):
    """Raised when an id is not in the store."""
