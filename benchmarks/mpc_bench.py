"""Benchmark of mpc_lite: duplicate detection, PSI, aggregation, joint check.

Each measurement is printed next to its floor from the same run:

* duplicate detection and PSI: the scalar multiplications the protocol
  performs, counted as it runs, times the cost of one multiplication
  measured just before and just after the run (hashing to the group,
  validation, signing and Python are the rest);
* 2-party PSI also against `openmined-psi` (client learns the
  intersection), when it is installed (benchmark only, never a dependency);
* secure aggregation: a plain, insecure sum of the same vectors;
* the joint fraud check (duplicates and scores) for a batch of claims over
  3 insurers, floor as for duplicate detection.

    .venv/bin/python benchmarks/mpc_bench.py            # 10,000-element runs
    .venv/bin/python benchmarks/mpc_bench.py --large    # adds 100,000
"""

from __future__ import annotations

import argparse
import os
import random
import time
from array import array
from collections.abc import Callable, Sequence
from decimal import Decimal

from nacl.signing import SigningKey

import mpc_lite.aggregate as aggregate
import mpc_lite.psi as psi
from mpc_lite.aggregate import share_words, sum_words
from mpc_lite.fraud import ClaimInput, Member, joint_fraud_check
from mpc_lite.group import hash_to_group, random_scalar
from mpc_lite.keys import claimant_key, treatment_key

Row = tuple[str, float, float, str]


def _mult_cost(samples: int = 1000) -> float:
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


class _Counter:
    """Counts scalar multiplications in psi and aggregate while active."""

    def __init__(self) -> None:
        self.mults = 0
        self._original: Callable[[Sequence[bytes], bytes], list[bytes]] = psi.blind_many

    def __enter__(self) -> _Counter:
        def counting(points: Sequence[bytes], scalar: bytes) -> list[bytes]:
            self.mults += len(points)
            return self._original(points, scalar)

        psi.blind_many = counting  # type: ignore[assignment]
        aggregate.blind_many = counting  # type: ignore[assignment]
        return self

    def __exit__(self, *_: object) -> None:
        psi.blind_many = self._original  # type: ignore[assignment]
        aggregate.blind_many = self._original  # type: ignore[assignment]


def bench_psi(
    count: int, parties: int, *, one_sided: bool = False
) -> tuple[float, int, int]:
    """`one_sided`: only the first party asks (the others only answer)."""
    sets = _claims(count, parties, 0.1, seed=7)
    with _Counter() as counter:
        members = [
            psi.Party(
                f"insurer-{i}", s, queries=None if i == 0 or not one_sided else []
            )
            for i, s in enumerate(sets)
        ]
        start = time.perf_counter()
        result = psi.duplicate_check(members)
        elapsed = time.perf_counter() - start
    flagged = sum(sum(flags) for flags in result.values())
    return elapsed, counter.mults, flagged


def bench_openmined(count: int) -> float | None:
    try:
        import private_set_intersection.python as om  # type: ignore[import-untyped]
    except ImportError:
        return None
    client_items = [f"c{i}" for i in range(count)]
    server_items = [f"c{i}" for i in range(count // 2, count + count // 2)]
    start = time.perf_counter()
    client = om.client.CreateWithNewKey(True)
    server = om.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(
        0.0, len(client_items), server_items, om.DataStructure.RAW
    )
    response = server.ProcessRequest(client.CreateRequest(client_items))
    found = client.GetIntersection(setup, response)
    elapsed = time.perf_counter() - start
    assert len(found) == count // 2
    return elapsed


def bench_aggregation(parties: int, features: int) -> tuple[float, float]:
    vectors = [array("Q", os.urandom(8 * features)) for _ in range(parties)]
    start = time.perf_counter()
    plain = sum_words(vectors)
    floor = time.perf_counter() - start

    start = time.perf_counter()
    inbox: list[list[array[int]]] = [[] for _ in range(parties)]
    for vector in vectors:
        for holder, part in enumerate(share_words(vector, parties)):
            inbox[holder].append(part)
    sums = [sum_words(received) for received in inbox]
    total = sum_words(sums)
    elapsed = time.perf_counter() - start
    assert total == plain
    return elapsed, floor


def _fraud_batch(count: int, insurers: int = 3) -> list[Member]:
    rng = random.Random(11)
    members = [
        Member(f"insurer-{i}", SigningKey.generate(), []) for i in range(insurers)
    ]
    patients = [f"MRN-{i}" for i in range(max(count // 8, 1))]
    day, patient = "", ""
    for index in range(count):
        # One claim in 50 is claimed again at the next insurer.
        again = index % 50 == 1
        if not again:
            day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            patient = rng.choice(patients)
        invoice = f"INV-{index - 1 if again else index}"
        members[index % insurers].holdings.append(
            ClaimInput(
                claim_id=f"claim-{index}",
                treatment=treatment_key("did:key:zH", invoice, day, ["cpt|99213"]),
                claimant=claimant_key(patient),
                hospital=f"did:key:zH{rng.randint(1, 4)}",
                service_date=day,
                amount=Decimal(rng.randint(50, 5000)),
            )
        )
    return members


def bench_fraud(count: int) -> tuple[float, int, str]:
    members = _fraud_batch(count)
    batch = {m.name: list(m.holdings) for m in members}
    with _Counter() as counter:
        start = time.perf_counter()
        result = joint_fraud_check(members, batch, job_id="bench")
        elapsed = time.perf_counter() - start
    verdicts = result.verdicts.values()
    note = (
        f"{sum(v.duplicate for v in verdicts):,} duplicates, "
        f"{sum(v.score is not None for v in verdicts):,} scored, "
        f"{sum(v.flagged for v in verdicts):,} flagged"
    )
    return elapsed, counter.mults, note


class _Rows(list[Row]):
    """Prints each row as it is added (long runs show progress)."""

    def append(self, row: Row) -> None:
        super().append(row)
        name, seconds, floor_s, note = row
        ratio = seconds / floor_s if floor_s else float("nan")
        print(
            f"{name:<44} {seconds:>9.2f} {floor_s:>9.2f} {ratio:>8.2f}  {note}",
            flush=True,
        )


class _Cost:
    """The cost of one multiplication, measured before and after a run.

    The mean of the two keeps the floor honest on a machine whose load
    changes during a long run.
    """

    def __enter__(self) -> _Cost:
        self._before = _mult_cost()
        return self

    def __exit__(self, *_: object) -> None:
        self.value = (self._before + _mult_cost()) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add 100,000 runs")
    args = parser.parse_args()
    sizes = [10_000, 100_000] if args.large else [10_000]

    print(f"one ristretto255 scalar multiplication: {_mult_cost() * 1e6:.1f} us")
    print(f"{'run':<44} {'seconds':>9} {'floor s':>9} {'x floor':>8}  note")
    rows: list[Row] = _Rows()
    for claims in (500, 10_000):
        with _Cost() as cost:
            elapsed, mults, note = bench_fraud(claims)
        name = f"joint fraud check, {claims:,} claims / 3"
        rows.append((name, elapsed, mults * cost.value, note))
    for claims in sizes:
        with _Cost() as cost:
            elapsed, mults, flagged = bench_psi(claims, 3)
        name = f"duplicate check, 3 insurers x {claims:,}"
        rows.append((name, elapsed, mults * cost.value, f"{flagged:,} flagged"))
    for claims in sizes:
        theirs = bench_openmined(claims)
        for one_sided in (True, False):
            with _Cost() as cost:
                elapsed, mults, _ = bench_psi(claims, 2, one_sided=one_sided)
            floor = mults * cost.value
            note = (
                "openmined-psi not installed"
                if theirs is None
                else f"openmined-psi {theirs:.2f} s, ours/theirs {elapsed / theirs:.2f}"
            )
            kind = "one side learns" if one_sided else "both learn"
            name = f"2-party PSI, {claims:,} each, {kind}"
            rows.append((name, elapsed, floor, note))
    elapsed, floor = bench_aggregation(10, 100_000)
    rows.append(("secure sum, 10 parties x 100,000 features", elapsed, floor, ""))

    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
