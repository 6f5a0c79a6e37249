"""Member keys on disk: one Ed25519 seed per member, readable by its owner only.

In the embedded default every member's key sits in the one workspace, which is
what a single-machine demo needs and nothing more: when members run on their
own machines each keeps only its own file. A key file holds the 32-byte seed
in hex and is created with mode 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

from claims.errors import ConfigError
from credentials.keys import Ed25519Key

__all__ = ["KeyStore"]


class KeyStore:
    """The `keys/` folder of a workspace."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"{name!r} is not a usable key name")
        return self.folder / f"{name}.key"

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def load(self, name: str) -> Ed25519Key:
        """The key called `name`; `ConfigError` if there is none or it is damaged."""
        path = self._path(name)
        try:
            seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            raise ConfigError(
                f"no key named {name!r} in {self.folder}",
                remedy="create it first (for example `claims hospital init`)",
            ) from None
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"key file {path} is damaged: not a hex seed") from None
        if len(seed) != 32:
            raise ConfigError(f"key file {path} is damaged: seed is not 32 bytes")
        return Ed25519Key.from_seed(seed)

    def create(self, name: str) -> Ed25519Key:
        """Generate and save a new key; refuses to overwrite an existing one."""
        path = self._path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        key = Ed25519Key.generate()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"a key named {name!r} already exists") from None
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key.seed.hex() + "\n")
        return key

    def load_or_create(self, name: str) -> Ed25519Key:
        return self.load(name) if self.exists(name) else self.create(name)
