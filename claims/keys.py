"""Member keys at rest: Ed25519 seeds sealed under the workspace passphrase.

Every key file in a workspace's `keys/` folder holds one 32-byte seed sealed
with libsodium's secretbox (XSalsa20-Poly1305, a fresh nonce per file) under a
key-encryption key derived from the passphrase with Argon2id (RFC 9106). The
Argon2id salt and work factors live in `keys/kdf.json`; the derivation runs
once per process and workspace, so a consortium of a hundred members does not
pay a hundred derivations. Files are created with mode 0600.

The passphrase comes from `$CLAIMS_KEY_PASSPHRASE` or, in a terminal, from a
prompt (the CLI passes one in); never from a command-line argument, and it is
never logged. A workspace made by `claims demo` uses the published demo
passphrase unless the environment sets one: demo keys protect nothing.

In the embedded default every member's key sits in the one workspace, which is
what a single-machine demo needs and nothing more: when members run on their
own machines each keeps only its own file.

A key is made once, before anything is signed with it (when its workspace is
set up or its member is added), and never again: `load` refuses a missing
file with `MissingKey` rather than making a replacement, which would sign
with a key nobody trusts. Whether a key may still be made is the caller's
question (`claims.consortium` answers it); this module only refuses to make
`kdf.json` afresh beside sealed keys.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import nacl.pwhash
import nacl.secret
import nacl.utils
from nacl.exceptions import CryptoError

from claims.errors import ConfigError
from credentials.keys import Ed25519Key

__all__ = [
    "DEMO_PASSPHRASE",
    "PASSPHRASE_ENV",
    "KeyStore",
    "MissingKey",
    "passphrase_from_env",
]

logger = logging.getLogger(__name__)

PASSPHRASE_ENV = "CLAIMS_KEY_PASSPHRASE"
DEMO_PASSPHRASE = "claims-demo-passphrase"
"""Seals the keys of demo workspaces only; it is public, so they are not secret."""

_FORMAT = "claims-sealed-seed/1"
_CHECK = b"claims workspace key-encryption key"
_OPS = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
_MEM = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE

# Derived key-encryption keys, by (kdf file, passphrase digest): one derivation
# per process and workspace.
_KEKS: dict[tuple[str, bytes], bytes] = {}


class MissingKey(ConfigError):
    """Raised when a key file that must already exist is not in the keys folder.

    A replacement is never made on the fly: it would sign with a key that no
    member, witness or receipt holder trusts.
    """

    @classmethod
    def for_file(cls, path: Path) -> MissingKey:
        """The error for the missing file `path` of a workspace's keys folder."""
        return cls(
            f"key file {path} is missing; the keys folder must be the one the"
            " workspace was made with",
            remedy=f"restore {path.parent} from the original workspace or a"
            " backup; a key already in use is never made again",
        )


def passphrase_from_env(default: str | None = None) -> Callable[[], str]:
    """A passphrase source: `$CLAIMS_KEY_PASSPHRASE`, else `default`, else a
    prompt when a terminal is attached, else refuse. Asked once per source."""
    remembered: list[str] = []

    def source() -> str:
        if remembered:
            return remembered[0]
        value = os.environ.get(PASSPHRASE_ENV) or default
        if not value and sys.stdin.isatty():
            value = getpass.getpass("workspace key passphrase: ")
        if not value:
            raise ConfigError(
                "the workspace keys need a passphrase",
                remedy=f"set {PASSPHRASE_ENV}, or run the command in a terminal",
            )
        remembered.append(value)
        return value

    return source


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str, path: Path) -> bytes:
    if not isinstance(text, str):
        raise ConfigError(f"key file {path} is damaged: {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"key file {path} is damaged: {what} is not base64") from None


class KeyStore:
    """The `keys/` folder of a workspace.

    Args:
        folder: where the key files are.
        passphrase: called when a key must be sealed or opened; omitted,
            `$CLAIMS_KEY_PASSPHRASE` is required.
    """

    def __init__(
        self, folder: Path, passphrase: Callable[[], str] | None = None
    ) -> None:
        self.folder = folder
        self._passphrase = passphrase or passphrase_from_env()
        self._cache: dict[str, Ed25519Key] = {}

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith(".") or name == "kdf":
            raise ConfigError(f"{name!r} is not a usable key name")
        return self.folder / f"{name}.key"

    def _kek(self) -> bytes:
        """The key-encryption key: Argon2id of the passphrase, once per process."""
        kdf = self.folder / "kdf.json"
        if not kdf.exists():
            if any(self.folder.glob("*.key")):
                # A new salt would open none of the sealed keys beside it.
                raise MissingKey.for_file(kdf)
            self.folder.mkdir(parents=True, exist_ok=True)
            params = {
                "kdf": "argon2id",
                "salt": _b64(nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)),
                "opslimit": _OPS,
                "memlimit": _MEM,
            }
            try:
                _write_private(kdf, json.dumps(params))
            except FileExistsError:
                logger.debug("another process created %s first", kdf)
        try:
            params = json.loads(kdf.read_text(encoding="utf-8"))
            salt = _unb64(params["salt"], "salt", kdf)
            ops, mem = int(params["opslimit"]), int(params["memlimit"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{kdf} is damaged: {type(exc).__name__}") from None
        passphrase = self._passphrase().encode("utf-8")
        cache_key = (str(kdf.resolve()), hashlib.sha256(passphrase).digest())
        if cache_key not in _KEKS:
            kek = nacl.pwhash.argon2id.kdf(
                nacl.secret.SecretBox.KEY_SIZE,
                passphrase,
                salt,
                opslimit=ops,
                memlimit=mem,
            )
            self._check_kek(kdf, params, kek)
            _KEKS[cache_key] = kek
        return _KEKS[cache_key]

    def _check_kek(self, kdf: Path, params: dict[str, object], kek: bytes) -> None:
        """Refuse a passphrase other than the one the workspace was sealed with.

        The first passphrase seals a known check value into `kdf.json`; later
        ones must open it. Without this, a mistyped passphrase would seal a
        new member's key under a key nobody else can open.
        """
        box = nacl.secret.SecretBox(kek)
        check = params.get("check")
        if check is None:
            params["check"] = _b64(bytes(box.encrypt(_CHECK)))
            tmp = kdf.with_name(f".{kdf.name}.{os.getpid()}")
            _write_private(tmp, json.dumps(params))
            tmp.replace(kdf)
            return
        try:
            opened = box.decrypt(_unb64(check, "check", kdf))
        except CryptoError:
            opened = b""
        if opened != _CHECK:
            raise ConfigError(
                f"the passphrase does not open the keys in {self.folder}",
                remedy=f"check {PASSPHRASE_ENV}",
            )

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def load(self, name: str) -> Ed25519Key:
        """The key called `name`.

        Raises `MissingKey` when its file is absent (a replacement is never
        made here), and `ConfigError` when it is damaged or the passphrase does
        not open it.
        """
        if name in self._cache:
            return self._cache[name]
        path = self._path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MissingKey.for_file(path) from None
        except (UnicodeDecodeError, ValueError):
            raise ConfigError(f"key file {path} is damaged: not JSON") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ConfigError(f"key file {path} is not a sealed key ({_FORMAT})")
        sealed = _unb64(data.get("sealed"), "sealed", path)
        try:
            seed = nacl.secret.SecretBox(self._kek()).decrypt(sealed)
        except CryptoError:
            raise ConfigError(
                f"key file {path} does not open: wrong passphrase, or the file was"
                " changed",
                remedy=f"check {PASSPHRASE_ENV}",
            ) from None
        key = Ed25519Key.from_seed(seed)
        if data.get("did") != key.did:
            raise ConfigError(f"key file {path} does not match the DID it names")
        self._cache[name] = key
        return key

    def create(self, name: str) -> Ed25519Key:
        """Generate, seal and save a new key; refuses to overwrite an existing one."""
        path = self._path(name)
        key = Ed25519Key.generate()
        sealed = nacl.secret.SecretBox(self._kek()).encrypt(key.seed)
        document = {"format": _FORMAT, "did": key.did, "sealed": _b64(bytes(sealed))}
        try:
            _write_private(path, json.dumps(document))
        except FileExistsError:
            raise ConfigError(f"a key named {name!r} already exists") from None
        self._cache[name] = key
        logger.debug("created key %s (%s)", name, key.did)
        return key

    def load_or_create(self, name: str) -> Ed25519Key:
        """The key called `name`, created first if there is none.

        Only for a key that may still be made: the caller decides that (see
        the module docstring). Safe when several processes do this at once:
        one creates it, the others load what it created.
        """
        if self.exists(name):
            return self.load(name)
        try:
            return self.create(name)
        except ConfigError:
            if not self.exists(name):
                raise
            return self.load(name)


def _write_private(path: Path, text: str) -> None:
    """Create a file readable by its owner only (0600), all at once.

    The text goes to a temporary file first and is linked into place, so a
    reader never sees a half-written file, and two processes creating the
    same file cannot both succeed: the loser gets `FileExistsError`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
