"""The claimant's side of the gateway: sign in, submit, follow, fetch receipts.

`GatewayClient` signs in with the wallet key on first use and again whenever
the gateway says the token is bad or expired, so a long-running `claims
track` survives a gateway restart.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import base58
import httpx

from claims.errors import ConfigError
from claims.gateway._auth import login_message
from claims.gateway.errors import GatewayError
from claims.submission import make_submission
from credentials.keys import Ed25519Key

__all__ = ["GatewayClient"]

logger = logging.getLogger(__name__)

BUSY_RETRIES: tuple[float | None, ...] = (0.2, 0.5, 1.0, None)
"""Pauses before trying a 503 again; None: give up and raise."""


class GatewayClient:
    """A claimant talking to one insurer's gateway.

    Args:
        base_url: the gateway's URL (`http://127.0.0.1:8000`).
        key: the claimant's wallet key; it signs in and signs presentations.
        http: an `httpx.Client` to use (tests pass a `TestClient`); omitted,
            one is made for `base_url`.
        timeout: seconds per request, when the client is made here.
    """

    def __init__(
        self,
        base_url: str,
        key: Ed25519Key,
        *,
        http: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.key = key
        try:
            self.http = http or httpx.Client(base_url=base_url, timeout=timeout)
        except httpx.InvalidURL:
            raise ConfigError(
                "--insurer-url is not a URL",
                remedy="give one like http://127.0.0.1:8000",
            ) from None
        self._token: str | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayError(
                0,
                "unreachable",
                f"the gateway at {self.http.base_url} did not answer"
                f" ({type(exc).__name__})",
                remedy="check --insurer-url and that `claims insurer serve` runs",
            ) from exc

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data
        if isinstance(data, dict) and "error" in data:
            raise GatewayError(
                response.status_code, str(data["error"]), str(data.get("detail", ""))
            )
        raise GatewayError(
            response.status_code, "http_error", f"HTTP {response.status_code}"
        )

    def sign_in(self) -> str:
        """Sign in with the key; returns the bearer token (also kept)."""
        did = self.key.did
        nonce = self._json(self._send("POST", "/auth/challenge", json={"did": did}))
        message = login_message(nonce["audience"], did, nonce["nonce"])
        signature = "z" + base58.b58encode(self.key.sign(message)).decode("ascii")
        token = self._json(
            self._send(
                "POST",
                "/auth/token",
                json={"did": did, "nonce": nonce["nonce"], "signature": signature},
            )
        )
        self._token = str(token["access_token"])
        return self._token

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A signed-in request; signs in again once on a 401, and tries again
        a few times on a 503 (the store was busy and stored nothing)."""
        signed_in_again = False
        for pause in BUSY_RETRIES:
            if self._token is None:
                self.sign_in()
            headers = {"Authorization": f"Bearer {self._token}"}
            response = self._send(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and not signed_in_again:
                self._token, signed_in_again = None, True
                response = self._send(
                    method,
                    path,
                    headers={"Authorization": f"Bearer {self.sign_in()}"},
                    **kwargs,
                )
            if response.status_code != 503 or pause is None:
                return self._json(response)
            time.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- what a claimant does ----------------------------------------------

    def submit(self, credential: dict[str, Any], *, consent: bool = True) -> Any:
        """Submit `credential` as a claim; returns the claim as the gateway shows it."""
        challenge = self._call("POST", "/challenges")
        submission = make_submission(
            credential,
            self.key,
            challenge=challenge["challenge"],
            domain=challenge["domain"],
            consent=consent,
        )
        return self._call("POST", "/claims", json=submission)

    def claims(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = self._call("GET", "/claims")
        return data

    def claim(self, claim_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/claims/{claim_id}")
        return data

    def receipt(self, claim_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/claims/{claim_id}/receipt")
        return data

    def claim_response(self, claim_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", f"/claims/{claim_id}/claim-response")
        return data

    def ledger_keys(self) -> dict[str, Any]:
        data: dict[str, Any] = self._json(self._send("GET", "/ledger/keys"))
        return data
