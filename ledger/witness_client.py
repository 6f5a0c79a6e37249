"""A witness reached over HTTP (C2SP tlog-witness ``add-checkpoint``).

`RemoteWitness` has the interface `TransparencyLog.cosign` uses (``name``,
``vkey``, ``known_size``, ``add_checkpoint``), so a log can mix witnesses
in this process and witnesses in other members' services. The protocol
has no way to read a witness's size: the client remembers the size it
last got cosigned (0 at first) and learns the real one from a 409
answer, which `TransparencyLog.cosign` retries from once.

Cosignature lines in a 200 answer are checked against the witness key
given at construction; lines from other keys are dropped (C2SP
tlog-witness: the client ignores cosignatures from unknown keys).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from ledger.errors import (
    BadRequest,
    ForkDetected,
    InconsistentProof,
    NoteError,
    NotSignedByLog,
    SizeConflict,
    UnknownLog,
    WitnessError,
)
from ledger.note import (
    Checkpoint,
    NoteVerifier,
    add_signature_lines,
    unverified_signers,
    unverified_text,
    verify_note,
)
from ledger.witness import SIZE_MEDIA_TYPE, format_add_checkpoint

__all__ = ["RemoteWitness"]

logger = logging.getLogger(__name__)


class RemoteWitness:
    """The witness at ``url`` (its submission prefix), known by ``vkey``.

    ``vkey`` is the witness's cosigner key (type 0x04); its key name is
    the witness name. ``client`` may be shared between witnesses (keep-alive
    connections, as the spec recommends); omitted, one is made per witness.
    """

    def __init__(
        self,
        url: str,
        vkey: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.verifier = NoteVerifier.from_vkey(vkey)
        if not self.verifier.is_cosigner:
            raise WitnessError(f"key {self.verifier.name} is not a cosigner key")
        self.name = self.verifier.name
        self.vkey = vkey
        self.url = url.rstrip("/") + "/add-checkpoint"
        self._client = client or httpx.Client(timeout=timeout)
        self._known: dict[str, int] = {}

    def known_size(self, origin: str) -> int:
        """The size last cosigned for ``origin`` as far as this client knows."""
        return self._known.get(origin, 0)

    def add_checkpoint(
        self, note: str, old_size: int, proof: Sequence[bytes] = ()
    ) -> str:
        """POST the checkpoint; return the witness's verified cosignature line.

        Raises the `WitnessError` subclass matching the status code.
        """
        # Plan: 1. send; 2. map a refusal to its error; 3. keep only lines
        # from this witness's key that verify on the checkpoint.
        try:
            checkpoint = Checkpoint.from_text(unverified_text(note))
        except NoteError as exc:
            raise BadRequest(f"checkpoint to send is malformed: {exc}") from exc
        where = f"witness {self.name} at {self.url}, log {checkpoint.origin}"

        # 1.
        body = format_add_checkpoint(old_size, proof, note)
        try:
            response = self._client.post(
                self.url, content=body, headers={"Content-Type": "text/plain"}
            )
        except httpx.HTTPError as exc:
            raise WitnessError(f"{where} is unreachable: {type(exc).__name__}") from exc

        # 2.
        status, text = response.status_code, response.text.strip()
        if status == 409:
            known = self._conflict_size(response, where)
            self._known[checkpoint.origin] = known
            if known == old_size:
                raise ForkDetected(
                    f"{where}: size {old_size} was cosigned with another root"
                )
            raise SizeConflict(
                f"{where}: old size {old_size} given, last cosigned size is {known}",
                known,
            )
        if status != 200:
            kind: type[WitnessError] = {
                400: BadRequest,
                403: NotSignedByLog,
                404: UnknownLog,
                422: InconsistentProof,
            }.get(status, WitnessError)
            raise kind(f"{where} answered {status}: {text[:200]}")

        # 3.
        line = self._verified_line(note, response.text, where)
        self._known[checkpoint.origin] = checkpoint.size
        logger.debug("%s cosigned size %d", where, checkpoint.size)
        return line

    def _conflict_size(self, response: httpx.Response, where: str) -> int:
        media = response.headers.get("content-type", "").split(";")[0].strip()
        text = response.text
        if (
            media != SIZE_MEDIA_TYPE
            or not text.endswith("\n")
            or not text[:-1].isascii()
            or not text[:-1].isdigit()
            or len(text) > 20
        ):
            raise WitnessError(f"{where} answered 409 without a tree size")
        return int(text[:-1])

    def _verified_line(self, note: str, answer: str, where: str) -> str:
        try:
            lines = [line + "\n" for line in answer.splitlines() if line]
            cosigned = add_signature_lines(note, lines)
            verify_note(cosigned, [self.verifier])
        except NoteError as exc:
            raise WitnessError(f"{where} sent no valid cosignature: {exc}") from exc
        key = (self.verifier.name, self.verifier.key_id)
        for line in lines:
            if unverified_signers(unverified_text(note) + "\n" + line)[0] == key:
                return line
        raise WitnessError(f"{where} sent no cosignature by its key")

    def close(self) -> None:
        """Close the HTTP client (only useful if it was not given)."""
        self._client.close()

    def __repr__(self) -> str:
        return f"RemoteWitness({self.name!r}, {self.url!r})"
