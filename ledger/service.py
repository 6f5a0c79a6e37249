"""A witness as an HTTP endpoint: C2SP tlog-witness ``add-checkpoint``.

`witness_router` gives a FastAPI router that a member's service mounts
(``app.include_router(witness_router(witness), prefix="/witness")``); the
log reaches it with `ledger.witness_client.RemoteWitness`. Status codes, as
C2SP tlog-witness section "add-checkpoint" defines them:

    200  one cosignature line (text/plain)
    400  a body that breaks the format, or an old size above the checkpoint's
    403  the origin is followed but its key did not sign the checkpoint
    404  the origin is not followed
    409  the old size is not the last cosigned size, or the same size with
         another root; the body is the last cosigned size and a newline
         (``Content-Type: text/x.tlog.size``)
    422  the consistency proof does not verify

Every other body is one line of plain text naming what was wrong; no
key material or record content is ever in it. Requires the ``fastapi``
package (installed with Prefect).
"""

from __future__ import annotations

import logging
from typing import Final

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from ledger.errors import (
    BadRequest,
    ForkDetected,
    InconsistentProof,
    NotSignedByLog,
    RollbackRefused,
    SizeConflict,
    UnknownLog,
    WitnessError,
)
from ledger.witness import SIZE_MEDIA_TYPE, Witness, parse_add_checkpoint

__all__ = ["MAX_BODY_BYTES", "witness_router"]

logger = logging.getLogger(__name__)

#: A checkpoint note is small; 63 proof lines add about 3 KB.
MAX_BODY_BYTES: Final = 1 << 16


def _text(status: int, message: str) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain")


def witness_router(witness: Witness) -> APIRouter:
    """A router serving ``POST /add-checkpoint`` for ``witness``.

    The witness's own state store makes the check and the update atomic
    (C2SP tlog-witness asks for it); requests run in a worker thread.
    """
    router = APIRouter()

    @router.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        # Plan: 1. read and parse the body; 2. let the witness decide;
        # 3. map its refusal to the status code the spec gives it.

        # 1.
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _text(400, f"request body is larger than {MAX_BODY_BYTES} bytes")
        try:
            old_size, proof, note = parse_add_checkpoint(body)
        except BadRequest as exc:
            return _text(400, str(exc))

        # 2.
        try:
            line = await run_in_threadpool(
                witness.add_checkpoint, note, old_size, proof
            )
        # 3.
        except SizeConflict as exc:
            return Response(
                f"{exc.known_size}\n", status_code=409, media_type=SIZE_MEDIA_TYPE
            )
        except InconsistentProof as exc:
            return _text(422, str(exc))
        except ForkDetected:
            # same size, another root: a conflict with what was cosigned
            return Response(
                f"{old_size}\n", status_code=409, media_type=SIZE_MEDIA_TYPE
            )
        except NotSignedByLog as exc:
            return _text(403, str(exc))
        except UnknownLog as exc:
            return _text(404, str(exc))
        except (BadRequest, RollbackRefused) as exc:
            return _text(400, str(exc))
        except WitnessError as exc:
            logger.debug("witness %s failed: %s", witness.name, exc)
            return _text(500, f"witness {witness.name} cannot serve the request")
        return Response(line, status_code=200, media_type="text/plain")

    return router
