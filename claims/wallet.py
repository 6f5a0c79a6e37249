"""A claimant's wallet: a holder key and the credentials issued to it.

A wallet lives in the workspace at `wallets/<name>/`:

    key.json            the holder's Ed25519 key, sealed with a passphrase
                        (`credentials.key_file`: Argon2id + secretbox), mode 0600
    credentials/*.json  one file per credential held, named by a hash of its id

The passphrase is given by the caller (the CLI reads it from the environment
variable `CLAIMS_WALLET_PASSPHRASE` or a prompt, never from an argument); only
presenting needs it. Adding a credential checks its structure (VC Data Model
2.0) and that its subject is this wallet's DID, not its proof: the insurer
verifies that when the credential is presented.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from claims.errors import ClaimsError, ConfigError, NotFound
from credentials.data_integrity import verify_proof
from credentials.errors import CredentialError
from credentials.holder import present
from credentials.key_file import INTERACTIVE, KdfLimits, open_key, seal_key
from credentials.keys import Ed25519Key
from credentials.parse import load_json
from credentials.validate import validate_credential

__all__ = ["KDF_LIMITS", "PASSPHRASE_ENV", "CredentialSummary", "Wallet", "WalletError"]

logger = logging.getLogger(__name__)

PASSPHRASE_ENV = "CLAIMS_WALLET_PASSPHRASE"
"""The environment variable the CLI reads a wallet passphrase from."""

KDF_LIMITS: KdfLimits = INTERACTIVE
"""Argon2id work factors for new wallets (tests lower them)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class WalletError(ClaimsError):
    """Raised when a wallet cannot be created, read, or asked for a credential."""


@dataclass(frozen=True)
class CredentialSummary:
    """What `Wallet.list` shows of a credential: identifiers and dates only."""

    id: str
    issuer: str
    types: tuple[str, ...]
    valid_from: str | None
    valid_until: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "issuer": self.issuer,
            "type": list(self.types),
            "validFrom": self.valid_from,
            "validUntil": self.valid_until,
        }


class Wallet:
    """One wallet folder. Build it with `create()` or `open()`."""

    def __init__(self, folder: Path, did: str) -> None:
        self.folder = folder
        self.did = did

    # -- making and finding ------------------------------------------------

    @staticmethod
    def folder_of(workspace: Path, name: str) -> Path:
        """`<workspace>/wallets/<name>`; `ConfigError` for an unusable name."""
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{name!r} is not a usable wallet name",
                remedy="use letters, digits, '.', '_' or '-' (at most 64)",
            )
        return workspace / "wallets" / name

    @classmethod
    def create(
        cls,
        workspace: Path,
        name: str,
        passphrase: str,
        *,
        limits: KdfLimits | None = None,
    ) -> Wallet:
        """A new wallet with a fresh holder key; refuses to replace one.

        `limits` are the Argon2id work factors; omitted, `KDF_LIMITS`.
        """
        folder = cls.folder_of(workspace, name)
        key_path = folder / "key.json"
        if key_path.exists():
            raise WalletError(
                f"wallet {name!r} already exists in {folder.parent}",
                remedy="pick another --name, or use the wallet as it is",
            )
        key = Ed25519Key.generate()
        sealed = seal_key(key, passphrase, limits or KDF_LIMITS)
        (folder / "credentials").mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(sealed, handle, indent=2)
        logger.debug("created wallet %s for %s", name, key.did)
        return cls(folder, key.did)

    @classmethod
    def open(cls, workspace: Path, name: str) -> Wallet:
        """The wallet called `name`; `NotFound` if there is none."""
        folder = cls.folder_of(workspace, name)
        key_path = folder / "key.json"
        try:
            sealed = json.loads(key_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFound(
                f"no wallet named {name!r} in {folder.parent}",
                remedy=f"create it with `claims wallet init --name {name}`",
            ) from None
        except (OSError, ValueError) as exc:
            raise WalletError(f"wallet key file {key_path} is damaged") from exc
        did = sealed.get("did") if isinstance(sealed, dict) else None
        if not isinstance(did, str):
            raise WalletError(f"wallet key file {key_path} names no DID")
        return cls(folder, did)

    def key(self, passphrase: str) -> Ed25519Key:
        """The holder key; `KeyFileError` (credentials) for a wrong passphrase."""
        sealed = json.loads((self.folder / "key.json").read_text(encoding="utf-8"))
        return open_key(sealed, passphrase)

    # -- credentials -------------------------------------------------------

    def add(self, data: bytes) -> str:
        """Store the credential in `data` (JSON bytes); returns its id.

        Raises `credentials.errors.MalformedDocument` for bad JSON and
        `WalletError` when it is not a well-formed credential with an id, its
        subject is not this wallet's DID, its proof does not verify, or the
        wallet holds a different copy under the same id.
        """
        credential = load_json(data)
        problems = validate_credential(credential)
        if problems:
            raise WalletError(
                "not a well-formed credential: " + "; ".join(problems),
                remedy="check it with `claims vc validate FILE`",
            )
        credential_id = credential.get("id")
        if not isinstance(credential_id, str):
            raise WalletError("the credential has no id")
        subjects = credential["credentialSubject"]
        subjects = subjects if isinstance(subjects, list) else [subjects]
        if any(subject.get("id") != self.did for subject in subjects):
            raise WalletError(
                f"credential {credential_id} is not about this wallet's holder"
                f" {self.did}",
                remedy="ask the hospital to issue it to this wallet's DID",
            )
        # The issuer's signature must hold before the wallet keeps anything,
        # and a credential already held is never replaced by another copy.
        try:
            verify_proof(credential, expected_purpose="assertionMethod")
        except CredentialError as exc:
            raise WalletError(
                f"credential {credential_id} does not verify: {exc}",
                remedy="ask the hospital for the credential again",
            ) from exc
        path = self._path(credential_id)
        if path.exists():
            if load_json(path.read_bytes()) == credential:
                return credential_id
            raise WalletError(
                f"wallet {self.folder.name} already holds a different copy of"
                f" {credential_id}; nothing was changed"
            )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(bytes(data))
        tmp.replace(path)
        logger.debug("wallet %s holds %s", self.folder.name, credential_id)
        return credential_id

    def credentials(self) -> list[dict[str, Any]]:
        """Every credential held, in the order of their ids."""
        held = [
            load_json(path.read_bytes())
            for path in (self.folder / "credentials").glob("*.json")
        ]
        return sorted(held, key=lambda credential: str(credential.get("id")))

    def list(self) -> list[CredentialSummary]:
        """A summary of each credential held."""
        summaries = []
        for credential in self.credentials():
            issuer = credential.get("issuer")
            if isinstance(issuer, dict):
                issuer = issuer.get("id")
            types = credential.get("type")
            summaries.append(
                CredentialSummary(
                    id=str(credential.get("id")),
                    issuer=str(issuer),
                    types=tuple(
                        str(t) for t in (types if isinstance(types, list) else [types])
                    ),
                    valid_from=credential.get("validFrom"),
                    valid_until=credential.get("validUntil"),
                )
            )
        return summaries

    def get(self, credential_id: str | None = None) -> dict[str, Any]:
        """The credential `credential_id`, or the only one held when omitted."""
        if credential_id is None:
            held = self.credentials()
            if len(held) != 1:
                raise WalletError(
                    f"the wallet holds {len(held)} credentials, not exactly one",
                    remedy="name the credential to present (see `claims wallet list`)",
                )
            return held[0]
        path = self._path(credential_id)
        if not path.is_file():
            raise NotFound(
                f"the wallet holds no credential {credential_id}",
                remedy="see `claims wallet list`",
            )
        credential: dict[str, Any] = load_json(path.read_bytes())
        return credential

    def present(
        self,
        passphrase: str,
        *,
        challenge: str,
        domain: str,
        created: datetime,
        credential_id: str | None = None,
    ) -> dict[str, Any]:
        """A presentation of one credential for an insurer's challenge and domain."""
        credential = self.get(credential_id)
        return present(
            [credential],
            self.key(passphrase),
            challenge=challenge,
            domain=domain,
            created=created,
        )

    def _path(self, credential_id: str) -> Path:
        digest = hashlib.sha256(credential_id.encode("utf-8")).hexdigest()[:32]
        return self.folder / "credentials" / f"{digest}.json"
