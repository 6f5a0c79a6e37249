"""Signed protocol messages and the transports that carry them.

A protocol message is an `Envelope`: job id, round, sender, recipient and a
payload of named streams, each a list of 32-byte group elements. The sender
seals it with its Ed25519 key (RFC 8032, through PyNaCl) over the canonical
encoding below; the recipient opens it with the key the job's roster lists
for the claimed sender, and only then looks at the contents.

Encoding (all lengths 4-byte big-endian)::

    "mpc_lite/msg/v1" | len job_id | job_id | round | len sender | sender
    | len recipient | recipient | stream count
    | for each stream, sorted by name: len name | name | element count | elements

A `Transport` only moves sealed bytes; it is trusted for nothing. The
in-process transport (the default) keeps one inbox per party; an HTTP
transport would POST the same bytes to the recipient's party service.
"""

from __future__ import annotations

import logging
import sys
from abc import ABC, abstractmethod
from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from mpc_lite.errors import PartyUnavailable, ProtocolError

__all__ = [
    "Envelope",
    "InProcessTransport",
    "MessageGate",
    "SealedMessage",
    "Transport",
    "pack_words",
    "unpack_words",
]

logger = logging.getLogger(__name__)

_MAGIC = b"mpc_lite/msg/v1"
_SIGNATURE_BYTES = 64
_POINT_BYTES = 32


@dataclass(frozen=True)
class Envelope:
    """One protocol message before sealing or after opening."""

    job_id: str
    round: int
    sender: str
    recipient: str
    streams: dict[str, list[bytes]] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The canonical bytes that are signed (see the module docstring)."""
        parts = [
            _MAGIC,
            _text(self.job_id),
            self.round.to_bytes(4, "big"),
            _text(self.sender),
            _text(self.recipient),
            len(self.streams).to_bytes(4, "big"),
        ]
        for name in sorted(self.streams):
            points = self.streams[name]
            parts.append(_text(name))
            parts.append(len(points).to_bytes(4, "big"))
            parts.extend(points)
        return b"".join(parts)

    def seal(self, signing_key: SigningKey) -> SealedMessage:
        """Sign the encoding with the sender's key."""
        body = self.encode()
        signature = signing_key.sign(body).signature
        return SealedMessage(body=body, signature=bytes(signature))


@dataclass(frozen=True)
class SealedMessage:
    """A signed envelope as it travels: `signature || body` on the wire."""

    body: bytes
    signature: bytes

    def to_bytes(self) -> bytes:
        return self.signature + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedMessage:
        return cls(body=data[_SIGNATURE_BYTES:], signature=data[:_SIGNATURE_BYTES])

    def unverified_envelope(self) -> Envelope:
        """Parse the body without checking the signature (for routing only).

        Raises `ProtocolError` when the body is malformed.
        """
        try:
            return _decode(self.body)
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            raise ProtocolError(
                "message body is malformed", party="<unknown>", round=0
            ) from exc

    def open(self, roster: dict[str, bytes]) -> Envelope:
        """Return the envelope if its claimed sender is in `roster` and signed it.

        Raises `ProtocolError` naming the claimed sender and round otherwise.
        The caller must still check job id, recipient, round order and replay.
        """
        envelope = self.unverified_envelope()
        key = roster.get(envelope.sender)
        if key is None:
            raise ProtocolError(
                f"message from {envelope.sender!r} in round {envelope.round} "
                "refused: the sender is not a member of this job",
                party=envelope.sender,
                round=envelope.round,
            )
        try:
            VerifyKey(key).verify(self.body, self.signature)
        except (BadSignatureError, ValueError) as exc:
            raise ProtocolError(
                f"message from {envelope.sender!r} in round {envelope.round} "
                "refused: its signature does not verify under the sender's key",
                party=envelope.sender,
                round=envelope.round,
            ) from exc
        return envelope


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return len(data).to_bytes(4, "big") + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self._at + count > len(self._data):
            raise ValueError("truncated message")
        chunk = self._data[self._at : self._at + count]
        self._at += count
        return chunk

    def number(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def text(self) -> str:
        return self.take(self.number()).decode("utf-8")

    def done(self) -> bool:
        return self._at == len(self._data)


def _decode(body: bytes) -> Envelope:
    reader = _Reader(body)
    if reader.take(len(_MAGIC)) != _MAGIC:
        raise ValueError("not an mpc_lite message")
    job_id = reader.text()
    round_ = reader.number()
    sender = reader.text()
    recipient = reader.text()
    streams: dict[str, list[bytes]] = {}
    for _ in range(reader.number()):
        name = reader.text()
        count = reader.number()
        if name in streams:
            raise ValueError("stream repeated")
        streams[name] = [reader.take(_POINT_BYTES) for _ in range(count)]
    if not reader.done():
        raise ValueError("trailing bytes")
    return Envelope(job_id, round_, sender, recipient, streams)


class Transport(ABC):
    """Moves sealed messages between parties; trusted for nothing."""

    @abstractmethod
    def send(self, message: SealedMessage) -> None:
        """Deliver `message` to the recipient its header names.

        Raises `PartyUnavailable` naming the recipient when it cannot be reached.
        """

    @abstractmethod
    def receive(self, recipient: str) -> list[SealedMessage]:
        """Everything delivered to `recipient` since the last call, in order."""


class InProcessTransport(Transport):
    """All parties in one process: one inbox per party.

    `disconnect(name)` takes a party offline: what it sends is lost and
    sending to it raises `PartyUnavailable`.
    """

    def __init__(self) -> None:
        self._inboxes: dict[str, list[SealedMessage]] = defaultdict(list)
        self._offline: set[str] = set()

    def disconnect(self, name: str) -> None:
        self._offline.add(name)

    def send(self, message: SealedMessage) -> None:
        envelope = message.unverified_envelope()
        if envelope.sender in self._offline:
            logger.debug("dropped a message from offline party %s", envelope.sender)
            return
        if envelope.recipient in self._offline:
            raise PartyUnavailable(
                f"party {envelope.recipient!r} is unreachable (round {envelope.round})",
                party=envelope.recipient,
                round=envelope.round,
            )
        self._inboxes[envelope.recipient].append(message)

    def receive(self, recipient: str) -> list[SealedMessage]:
        messages = self._inboxes.pop(recipient, [])
        return messages


def pack_words(values: Sequence[int]) -> list[bytes]:
    """Carry unsigned 64-bit words in 32-byte stream items (4 per item).

    Words are written little-endian; the last item is padded with zero
    words. `unpack_words` needs the word count to undo the padding.
    """
    data = array("Q", values)
    if sys.byteorder == "big":
        data.byteswap()
    raw = data.tobytes()
    raw += bytes(-len(raw) % _POINT_BYTES)
    return [raw[at : at + _POINT_BYTES] for at in range(0, len(raw), _POINT_BYTES)]


def unpack_words(items: Sequence[bytes], count: int) -> list[int]:
    """The `count` words `pack_words` put into `items`.

    Raises `ValueError` when the items do not hold exactly `count` words
    followed by zero padding.
    """
    if len(items) != -(-count // 4):
        raise ValueError("wrong number of items for the word count")
    raw = b"".join(items)
    if any(raw[8 * count :]):
        raise ValueError("non-zero padding")
    data = array("Q")
    data.frombytes(raw[: 8 * count])
    if sys.byteorder == "big":
        data.byteswap()
    return data.tolist()


class MessageGate:
    """The checks every protocol session makes on a received message.

    `expected` maps each sender to the rounds, in order, it must send to
    this party. `admit` opens the message with the roster (signature by the
    claimed member), then refuses another job, another recipient, a replay,
    a round out of order, or one nobody expects; it returns the envelope.
    Every refusal is a `ProtocolError` naming the claimed sender and round.
    """

    def __init__(
        self,
        me: str,
        job_id: str,
        roster: dict[str, bytes],
        expected: dict[str, list[int]],
    ) -> None:
        self.me = me
        self.job_id = job_id
        self._roster = dict(roster)
        self._pending = {sender: sorted(rounds) for sender, rounds in expected.items()}
        self._seen: set[tuple[str, int]] = set()

    def refusal(self, envelope: Envelope, reason: str) -> ProtocolError:
        """A `ProtocolError` for `envelope`, naming its sender and round."""
        return ProtocolError(
            f"message from {envelope.sender!r} in round {envelope.round} "
            f"refused by {self.me!r}: {reason}",
            party=envelope.sender,
            round=envelope.round,
        )

    def admit(self, message: SealedMessage) -> Envelope:
        envelope = message.open(self._roster)
        if envelope.job_id != self.job_id:
            raise self.refusal(envelope, "it belongs to another job")
        if envelope.recipient != self.me:
            raise self.refusal(envelope, "it is addressed to another party")
        if (envelope.sender, envelope.round) in self._seen:
            raise self.refusal(envelope, "replayed")
        pending = self._pending.get(envelope.sender, [])
        if not pending:
            raise self.refusal(envelope, "no further message is expected from it")
        if envelope.round != pending[0]:
            raise self.refusal(envelope, f"out of order (expected round {pending[0]})")
        pending.pop(0)
        self._seen.add((envelope.sender, envelope.round))
        return envelope

    def finished(self) -> bool:
        """Whether every expected message has been admitted."""
        return not any(self._pending.values())

    def require_round(self, round_: int) -> None:
        """Raise `PartyUnavailable` naming a sender whose message is missing."""
        for sender, pending in sorted(self._pending.items()):
            if pending and pending[0] <= round_:
                raise PartyUnavailable(
                    f"party {sender!r} sent no message in round {pending[0]} "
                    f"to {self.me!r}",
                    party=sender,
                    round=pending[0],
                )
