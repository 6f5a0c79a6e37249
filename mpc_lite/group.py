"""ristretto255 (RFC 9496) through libsodium, as bundled by `rbcl`.

Everything a protocol receives from another party is validated before it
is used: by `validate_point`, or, for points the receiver raises to its
scalar straight away, by `blind_received`, whose multiplication performs
the same canonical decoding. The identity element is refused by both:
libsodium's `crypto_core_ristretto255_is_valid_point` accepts it (it
decodes canonically), and a blinded identity would match every other
blinded identity.

Hashing to the group is `hash_to_ristretto255` with `expand_message_xmd`
over SHA-512 (RFC 9380 section 5.3.1; RFC 9496 section 4.3.4, suite
`ristretto255_XMD:SHA-512_R255MAP_RO_`): the element's discrete logarithm is
unknown to everyone, unlike `g^H(x)`, whose logarithm `H(x)` anyone can
compute, which would let a party undo the blinding by dictionary.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

import rbcl  # type: ignore[import-untyped]

from mpc_lite.errors import InvalidPoint

__all__ = [
    "POINT_BYTES",
    "SCALAR_BYTES",
    "blind",
    "blind_many",
    "blind_received",
    "hash_many",
    "hash_to_group",
    "invert_scalar",
    "multiply_scalars",
    "random_scalar",
    "validate_point",
]

POINT_BYTES = 32
SCALAR_BYTES = 32
_IDENTITY = bytes(POINT_BYTES)
_SHA512_BLOCK = 128
_SHA512_OUT = 64


def expand_message_xmd(data: bytes, dst: bytes, length: int) -> bytes:
    """`expand_message_xmd` with SHA-512, RFC 9380 section 5.3.1."""
    if not 0 < len(dst) <= 255:
        raise ValueError("domain separation tag must be 1 to 255 bytes")
    ell = -(-length // _SHA512_OUT)
    if ell > 255 or length > 65535:
        raise ValueError("requested output is too long for expand_message_xmd")
    dst_prime = dst + bytes([len(dst)])
    z_pad = bytes(_SHA512_BLOCK)
    msg_prime = z_pad + data + length.to_bytes(2, "big") + b"\x00" + dst_prime
    b_0 = hashlib.sha512(msg_prime).digest()
    b_i = hashlib.sha512(b_0 + b"\x01" + dst_prime).digest()
    blocks = [b_i]
    for i in range(2, ell + 1):
        mixed = bytes(x ^ y for x, y in zip(b_0, b_i, strict=True))
        b_i = hashlib.sha512(mixed + bytes([i]) + dst_prime).digest()
        blocks.append(b_i)
    return b"".join(blocks)[:length]


def hash_to_group(domain: bytes, data: bytes) -> bytes:
    """Map `data` to a ristretto255 element under the separation tag `domain`.

    RFC 9496 section 4.3.4 (`hash_to_ristretto255`): 64 uniform bytes from
    `expand_message_xmd` (SHA-512, RFC 9380 section 5.3.1), then the
    one-way map `crypto_core_ristretto255_from_hash`. `domain` must be 1 to
    255 bytes; different domains give independent maps.
    """
    uniform = expand_message_xmd(data, domain, _SHA512_OUT)
    return bytes(rbcl.crypto_core_ristretto255_from_hash(uniform))


def hash_many(domain: bytes, items: Iterable[bytes]) -> list[bytes]:
    """`hash_to_group(domain, item)` for each item, with the set-up shared.

    The same RFC 9380 section 5.3.1 expansion to 64 bytes (one output
    block): the SHA-512 state after the zero block Z_pad is computed once
    and copied per item, and the tails that depend only on `domain` are
    built once.
    """
    if not 0 < len(domain) <= 255:
        raise ValueError("domain separation tag must be 1 to 255 bytes")
    dst_prime = domain + bytes([len(domain)])
    after_pad = hashlib.sha512(bytes(_SHA512_BLOCK))
    first_tail = _SHA512_OUT.to_bytes(2, "big") + b"\x00" + dst_prime
    second_tail = b"\x01" + dst_prime
    sha512 = hashlib.sha512
    to_point = rbcl.crypto_core_ristretto255_from_hash
    points = []
    for item in items:
        state = after_pad.copy()
        state.update(item + first_tail)
        uniform = sha512(state.digest() + second_tail).digest()
        points.append(bytes(to_point(uniform)))
    return points


def random_scalar() -> bytes:
    """A uniformly random non-zero scalar modulo the group order."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_random())


def multiply_scalars(left: bytes, right: bytes) -> bytes:
    """The product of two scalars modulo the group order."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_mul(left, right))


def invert_scalar(scalar: bytes) -> bytes:
    """The inverse of a non-zero scalar modulo the group order."""
    return bytes(rbcl.crypto_core_ristretto255_scalar_invert(scalar))


def validate_point(data: bytes) -> bytes:
    """Return `data` if it encodes a ristretto255 element other than the identity.

    RFC 9496 section 4.3.1 (canonical decoding). Raises `InvalidPoint`
    otherwise; the message never repeats the bytes.
    """
    if not isinstance(data, bytes) or len(data) != POINT_BYTES:
        raise InvalidPoint(f"a group element must be {POINT_BYTES} bytes")
    if hmac.compare_digest(data, _IDENTITY):
        raise InvalidPoint("the identity element is not accepted")
    if not rbcl.crypto_core_ristretto255_is_valid_point(data):
        raise InvalidPoint("bytes are not a canonical ristretto255 encoding")
    return data


def blind(point: bytes, scalar: bytes) -> bytes:
    """`point` raised to `scalar` (`crypto_scalarmult_ristretto255`).

    The point is validated first; libsodium refuses a product that would be
    the identity, which this turns into `InvalidPoint`.
    """
    validate_point(point)
    try:
        return bytes(rbcl.crypto_scalarmult_ristretto255(scalar, point))
    except RuntimeError as exc:
        raise InvalidPoint("scalar multiplication gave the identity") from exc


def blind_many(points: Sequence[bytes], scalar: bytes) -> list[bytes]:
    """Each point raised to `scalar`, for points already validated.

    libsodium still refuses a non-canonical point or an identity product;
    either raises `InvalidPoint`.
    """
    multiply = rbcl.crypto_scalarmult_ristretto255
    try:
        return [bytes(multiply(scalar, point)) for point in points]
    except RuntimeError as exc:
        raise InvalidPoint("scalar multiplication gave the identity") from exc


def blind_received(points: Sequence[bytes], scalar: bytes) -> list[bytes]:
    """Validate points another party sent and raise each to `scalar`, in one pass.

    `crypto_scalarmult_ristretto255` decodes its point with the canonical
    decoding of RFC 9496 section 4.3.1 (the one `validate_point` uses) and
    refuses a product that is the identity, which for a non-zero scalar
    happens exactly when the point is the identity. So a list this returns
    came from valid non-identity elements only, without paying for a
    separate decoding of each. `scalar` must be non-zero: `random_scalar`
    gives non-zero scalars, and so do their products and inverses. Raises
    `InvalidPoint` at the first point that is not a valid element.
    """
    multiply = rbcl.crypto_scalarmult_ristretto255
    try:
        return [bytes(multiply(scalar, point)) for point in points]
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InvalidPoint(
            "a received point is not a valid non-identity element"
        ) from exc
