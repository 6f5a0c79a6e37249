"""Benchmark of mpc_lite: duplicate detection and secure aggregation.

Each measurement is printed next to its floor from the same run:

* duplicate detection: the scalar multiplications the protocol performs,
  counted as it runs, times the cost of one multiplication measured just
  before (hashing to the group, validation and signing are the rest);
* secure aggregation: a plain, insecure sum of the same vectors.

    .venv/bin/python benchmarks/mpc_bench.py            # 3 x 10,000 claims
    .venv/bin/python benchmarks/mpc_bench.py --large    # 3 x 100,000 claims
"""

from __future__ import annotations

import argparse
import os
import random
import time
from array import array
from collections.abc import Callable, Sequence

import mpc_lite.psi as psi
from mpc_lite.aggregate import reconstruct, share
from mpc_lite.group import hash_to_group, random_scalar
from mpc_lite.keys import treatment_key

_MASK = (1 << 64) - 1


def _mult_cost(samples: int = 3000) -> float:
    point = hash_to_group(b"bench", b"point")
    scalar = random_scalar()
    start = time.perf_counter()
    psi.blind_many([point] * samples, scalar)
    return (time.perf_counter() - start) / samples


def _claims(count: int, parties: int, overlap: float, seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    shared = [
        treatment_key("did:key:zH", f"S-{i}", "2024-01-01", ["cpt|99213"])
        for i in range(int(count * overlap))
    ]
    sets = []
    for p in range(parties):
        own = [
            treatment_key(f"did:key:zH{p}", f"I-{i}", "2024-01-02", ["cpt|1"])
            for i in range(count - len(shared) // 2)
        ]
        picked = rng.sample(shared, len(shared) // 2)
        sets.append(own + picked)
    return sets


def bench_psi(count: int) -> tuple[float, float, int]:
    sets = _claims(count, 3, 0.1, seed=7)
    cost = _mult_cost()
    counter = {"mults": 0}
    original: Callable[[Sequence[bytes], bytes], list[bytes]] = psi.blind_many

    def counting(points: Sequence[bytes], scalar: bytes) -> list[bytes]:
        counter["mults"] += len(points)
        return original(points, scalar)

    psi.blind_many = counting  # type: ignore[assignment]
    try:
        parties = [psi.Party(f"insurer-{i}", s) for i, s in enumerate(sets)]
        start = time.perf_counter()
        result = psi.duplicate_check(parties)
        elapsed = time.perf_counter() - start
    finally:
        psi.blind_many = original  # type: ignore[assignment]
    flagged = sum(sum(flags) for flags in result.values())
    return elapsed, counter["mults"] * cost, flagged


def bench_aggregation(parties: int, features: int) -> tuple[float, float]:
    vectors = [list(array("Q", os.urandom(8 * features))) for _ in range(parties)]

    start = time.perf_counter()
    plain = reconstruct(vectors)
    floor = time.perf_counter() - start

    start = time.perf_counter()
    inbox: list[list[list[int]]] = [[] for _ in range(parties)]
    for vector in vectors:
        for holder, part in enumerate(share(vector, parties)):
            inbox[holder].append(part)
    sums = [reconstruct(received) for received in inbox]
    total = reconstruct(sums)
    elapsed = time.perf_counter() - start
    assert total == plain
    return elapsed, floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="3 x 100,000 claims")
    args = parser.parse_args()
    claims = 100_000 if args.large else 10_000

    rows = []
    elapsed, floor, flagged = bench_psi(claims)
    rows.append(
        (
            f"duplicate check, 3 insurers x {claims:,} claims",
            elapsed,
            floor,
            f"{flagged:,} flagged",
        )
    )
    elapsed, floor = bench_aggregation(10, 100_000)
    rows.append(("secure sum, 10 parties x 100,000 features", elapsed, floor, ""))

    print(f"{'run':<48} {'seconds':>9} {'floor s':>9} {'x floor':>8}  note")
    for name, seconds, floor_s, note in rows:
        ratio = seconds / floor_s if floor_s else float("nan")
        print(f"{name:<48} {seconds:>9.2f} {floor_s:>9.2f} {ratio:>8.1f}  {note}")


if __name__ == "__main__":
    main()
