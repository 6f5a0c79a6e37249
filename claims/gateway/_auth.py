"""Sign-in without passwords: a claimant signs a nonce with their DID key.

1. `POST /auth/challenge` with a did:key gives a fresh, single-use nonce.
2. The claimant signs `login_message(audience, did, nonce)` with the Ed25519
   key the did:key names and posts it to `POST /auth/token`.
3. The gateway checks the signature against the key decoded from the DID and
   hands out a short-lived bearer token: an HMAC-SHA256 over the DID, the
   insurer and the expiry, keyed by a secret that lives only in the process.

The message starts with a fixed tag so a signature made for signing in can
never be taken for a signature over anything else (a presentation, a ledger
note), and it names the insurer so it cannot be replayed at another one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import base58
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from claims.gateway.errors import GatewayError
from credentials.did_key import public_key_from_did
from credentials.errors import CredentialError

__all__ = ["LOGIN_TAG", "Authority", "decode_signature", "login_message"]

LOGIN_TAG = "claims-gateway-login/v1"
"""The domain-separation tag that opens every sign-in message."""

_MAX_PENDING = 10_000


def login_message(audience: str, did: str, nonce: str) -> bytes:
    """The exact bytes a claimant signs to sign in at `audience` (an insurer)."""
    return f"{LOGIN_TAG}\n{audience}\n{did}\n{nonce}\n".encode()


def decode_signature(value: str) -> bytes:
    """A 64-byte signature from multibase (`z` base58btc, `u` base64url) or base64.

    Standard base64 of 64 bytes is 88 characters ending in `==`, which no
    multibase form has, so it is recognised first: its first character can
    be `z` or `u` too. Raises `GatewayError` (400) for anything else.
    """
    try:
        if len(value) == 88 and value.endswith("=="):
            raw = base64.b64decode(value, validate=True)
        elif value.startswith("z"):
            raw = base58.b58decode(value[1:])
        elif value.startswith("u"):
            body = value[1:]
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        else:
            raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise GatewayError(
            400, "bad_signature", "signature is not multibase or base64"
        ) from exc
    if len(raw) != 64:
        raise GatewayError(
            400, "bad_signature", f"an Ed25519 signature has 64 bytes, not {len(raw)}"
        )
    return raw


@dataclass(frozen=True)
class _Pending:
    did: str
    expires: datetime


class Authority:
    """Nonces and tokens for one insurer's gateway.

    Args:
        audience: the insurer's presentation domain, signed into each message.
        clock: "now" for expiry checks.
        token_ttl: how long a token is good for.
        nonce_ttl: how long a sign-in nonce is good for.
    """

    def __init__(
        self,
        audience: str,
        clock: Callable[[], datetime],
        *,
        token_ttl: timedelta,
        nonce_ttl: timedelta = timedelta(minutes=2),
    ) -> None:
        self.audience = audience
        self.clock = clock
        self.token_ttl = token_ttl
        self.nonce_ttl = nonce_ttl
        self._secret = secrets.token_bytes(32)
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def challenge(self, did: str) -> tuple[str, datetime]:
        """A fresh nonce for `did` and its expiry; 400 for a DID we cannot use."""
        _public_key(did)
        now = self.clock()
        nonce = secrets.token_urlsafe(24)
        with self._lock:
            if len(self._pending) >= _MAX_PENDING:
                self._pending = {
                    k: v for k, v in self._pending.items() if v.expires > now
                }
            if len(self._pending) >= _MAX_PENDING:
                raise GatewayError(
                    429, "too_many_sign_ins", "too many sign-ins pending; try later"
                )
            self._pending[nonce] = _Pending(did, now + self.nonce_ttl)
        return nonce, now + self.nonce_ttl

    def token(self, did: str, nonce: str, signature: str) -> tuple[str, datetime]:
        """A bearer token for `did` once its signature over the nonce verifies.

        The nonce is spent by the attempt, whether the signature holds or not.
        """
        # 1. The nonce: ours, for this DID, fresh; used up now.
        with self._lock:
            pending = self._pending.pop(nonce, None)
        if pending is None or pending.did != did:
            raise GatewayError(401, "unknown_nonce", "the sign-in nonce is unknown")
        now = self.clock()
        if pending.expires < now:
            raise GatewayError(401, "expired_nonce", "the sign-in nonce has expired")

        # 2. The signature, by the key the did:key names.
        raw = decode_signature(signature)
        try:
            VerifyKey(_public_key(did)).verify(
                login_message(self.audience, did, nonce), raw
            )
        except BadSignatureError as exc:
            raise GatewayError(
                401, "bad_signature", f"the signature does not verify for {did}"
            ) from exc

        # 3. The token.
        expires = now + self.token_ttl
        body = _b64(
            json.dumps(
                {"sub": did, "aud": self.audience, "exp": int(expires.timestamp())},
                separators=(",", ":"),
            ).encode()
        )
        return f"{body}.{self._mac(body)}", expires

    def subject(self, token: str) -> str:
        """The DID a token was issued to; 401 for a bad or expired token."""
        body, _, mac = token.partition(".")
        if not body or not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise GatewayError(401, "bad_token", "the bearer token is not valid")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if data.get("aud") != self.audience:
            raise GatewayError(401, "bad_token", "the bearer token is for elsewhere")
        if data["exp"] < self.clock().timestamp():
            raise GatewayError(
                401, "expired_token", "the bearer token has expired; sign in again"
            )
        subject: str = data["sub"]
        return subject

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return _b64(digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _public_key(did: str) -> bytes:
    try:
        return public_key_from_did(did)
    except CredentialError as exc:
        raise GatewayError(400, "bad_did", f"not a usable did:key: {exc}") from exc
