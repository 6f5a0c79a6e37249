"""Register the claims flow with a Prefect server, for workers of a work pool.

    python -m flows.deploy --workspace WS [--pool claims] [--name claims]

Needs `PREFECT_API_URL` pointing at a running `prefect server start`. The
deployment runs `flows.process:process_claims` from this checkout (a local
source, for `process` work pools on the same machine); each run takes every
claim waiting in the workspace's queue, in leased batches, so several runs on
several workers share the queue without taking the same claim twice (see
`flows.process`). The workers must see the same `CLAIMS_DATABASE_URL` (a
PostgreSQL database, for more than one worker) and the same workspace folder
(member keys). The README's "Running at scale" section walks through it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import Flow

from flows.process import process_claims

__all__ = ["deploy"]

REPO = Path(__file__).resolve().parents[1]


def deploy(workspace: Path, *, pool: str = "claims", name: str = "claims") -> str:
    """Create or update the deployment; returns its id."""
    source = process_claims.from_source(
        source=str(REPO), entrypoint="flows/process.py:process_claims"
    )
    # Prefect's `from_source` gives a coroutine only when called from async code.
    if not isinstance(source, Flow):
        raise TypeError("deploy() must not be called from async code")
    deployment_id = source.deploy(
        name=name,
        work_pool_name=pool,
        parameters={"workspace": str(workspace.resolve())},
        print_next_steps=False,
    )
    return str(deployment_id)


def main() -> None:
    parser = argparse.ArgumentParser(description="Deploy the claims flow.")
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--pool", default="claims")
    parser.add_argument("--name", default="claims")
    args = parser.parse_args()
    print(deploy(args.workspace, pool=args.pool, name=args.name))


if __name__ == "__main__":
    main()
