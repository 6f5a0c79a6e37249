"""Benchmark of mpc_lite: duplicate detection, PSI, aggregation, joint check.

Each measurement is printed next to its floor from the same run:

* duplicate detection and PSI: the scalar multiplications the protocol
  performs, counted as it runs, times the cost of one multiplication
  measured just before and just after the run (hashing to the group,
  validation, signing and Python are the rest);
* 2-party PSI also against `openmined-psi` (benchmark only, never a
  dependency), when it is installed. "One side learns" is one openmined
  run (its client learns the intersection). "Both learn" runs two of our
  sub-protocols, one per party, so it is compared with two openmined runs,
  once in each direction: the fair equivalent;
* secure aggregation: the protocol's own primitive work, counted as it
  runs and priced at unit costs measured in the same run: every random
  byte drawn, at the cost per byte of the generator the shares use (the
  ChaCha20 keystream of `cryptography`), and every word addition, at the
  cost per word of one large vectorised numpy addition. A plain, insecure
  sum of the same vectors is shown next to it, so that the price of
  sharing is visible too. Both are the best of three runs after a warm-up
  (about 50 ms each, so one run would mostly measure the machine);
* the joint fraud check (duplicates and scores) for a batch of claims over
  3 insurers, floor as for duplicate detection.

    .venv/bin/python benchmarks/mpc_bench.py            # 10,000-element runs
    .venv/bin/python benchmarks/mpc_bench.py --large    # adds 100,000
    .venv/bin/python benchmarks/mpc_bench.py --only psi --sizes 2000
"""

from __future__ import annotations

import argparse
import os
import random
import time
from array import array
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from nacl.signing import SigningKey

import mpc_lite.aggregate as aggregate
import mpc_lite.psi as psi
from mpc_lite.aggregate import share_words, sum_words
from mpc_lite.fraud import ClaimInput, Member, joint_fraud_check
from mpc_lite.group import blind_many, hash_to_group, random_scalar
from mpc_lite.keys import claimant_key, treatment_key

Row = tuple[str, float, float, str]
KINDS = ("fraud", "dup", "psi", "sum")


def _mult_cost(samples: int = 1000) -> float:
    point = hash_to_group(b"bench", b"point")
    scalar = random_scalar()
    start = time.perf_counter()
    blind_many([point] * samples, scalar)
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


_Blind = Callable[[Sequence[bytes], bytes], list[bytes]]


class _Counter:
    """Counts scalar multiplications in psi and aggregate while active."""

    def __init__(self) -> None:
        self.mults = 0
        self._patched: list[tuple[Any, str, _Blind]] = [
            (module, name, getattr(module, name))
            for module, name in [
                (psi, "blind_many"),
                (psi, "blind_received"),
                (aggregate, "blind_many"),
            ]
        ]

    def _counting(self, original: _Blind) -> _Blind:
        def counting(points: Sequence[bytes], scalar: bytes) -> list[bytes]:
            self.mults += len(points)
            return original(points, scalar)

        return counting

    def __enter__(self) -> _Counter:
        for module, name, original in self._patched:
            setattr(module, name, self._counting(original))
        return self

    def __exit__(self, *_: object) -> None:
        for module, name, original in self._patched:
            setattr(module, name, original)


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


def bench_openmined(count: int, *, directions: int = 1) -> float | None:
    """openmined-psi, client learns the intersection; `directions` runs."""
    try:
        import private_set_intersection.python as om  # type: ignore[import-untyped]
    except ImportError:
        return None
    first = [f"c{i}" for i in range(count)]
    second = [f"c{i}" for i in range(count // 2, count + count // 2)]
    elapsed = 0.0
    for client_items, server_items in [(first, second), (second, first)][:directions]:
        start = time.perf_counter()
        client = om.client.CreateWithNewKey(True)
        server = om.server.CreateWithNewKey(True)
        setup = server.CreateSetupMessage(
            0.0, len(client_items), server_items, om.DataStructure.RAW
        )
        response = server.ProcessRequest(client.CreateRequest(client_items))
        found = client.GetIntersection(setup, response)
        elapsed += time.perf_counter() - start
        assert len(found) == count // 2
    return elapsed


class _SumCounter:
    """Counts random bytes drawn and word additions in `mpc_lite.aggregate`.

    Wraps the keystream `share_words` draws from and the numpy namespace
    it adds with, so the counts are of the work done, not a formula.
    """

    def __init__(self) -> None:
        self.random_bytes = 0
        self.additions = 0
        self._keystream = aggregate._keystream
        self._np = getattr(aggregate, "np")  # noqa: B009 (patched below)

    def __enter__(self) -> _SumCounter:
        counter = self

        class Stream:
            def __init__(self, inner: Any) -> None:
                self._inner = inner

            def update_into(self, data: Any, buf: Any) -> int:
                counter.random_bytes += len(data)
                written: int = self._inner.update_into(data, buf)
                return written

        class Numpy:
            def __getattr__(self, name: str) -> Any:
                return getattr(np, name)

            def add(self, left: Any, right: Any, *, out: Any) -> Any:
                counter.additions += out.size
                return np.add(left, right, out=out)

            def subtract(self, left: Any, right: Any, *, out: Any) -> Any:
                counter.additions += out.size
                return np.subtract(left, right, out=out)

        setattr(aggregate, "_keystream", lambda: Stream(self._keystream()))  # noqa: B010
        setattr(aggregate, "np", Numpy())  # noqa: B010
        return self

    def __exit__(self, *_: object) -> None:
        setattr(aggregate, "_keystream", self._keystream)  # noqa: B010
        setattr(aggregate, "np", self._np)  # noqa: B010


def _random_byte_cost(size: int = 1 << 23) -> float:
    """Seconds per byte of ChaCha20 keystream (`cryptography`), best of 5."""
    zeros, out = bytes(size), bytearray(size + 64)
    best = float("inf")
    for _ in range(5):
        cipher = Cipher(algorithms.ChaCha20(os.urandom(32), bytes(16)), mode=None)
        stream = cipher.encryptor()
        start = time.perf_counter()
        stream.update_into(zeros, out)
        best = min(best, time.perf_counter() - start)
    return best / size


def _addition_cost(words: int = 1 << 20) -> float:
    """Seconds per uint64 word of one large numpy addition, best of 5."""
    left = np.frombuffer(os.urandom(8 * words), dtype=np.uint64)
    right = np.frombuffer(os.urandom(8 * words), dtype=np.uint64)
    out = np.empty_like(left)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        np.add(left, right, out=out)
        best = min(best, time.perf_counter() - start)
    return best / words


def _best_of(runs: int, work: Callable[[], object]) -> float:
    work()  # warm-up: the first run also grows the process's memory
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def bench_aggregation(parties: int, features: int) -> tuple[float, float, str]:
    """Secure sum: seconds, counted floor in seconds, and a note."""
    vectors = [array("Q", os.urandom(8 * features)) for _ in range(parties)]
    plain_total = sum_words(vectors)
    plain = _best_of(3, lambda: sum_words(vectors))

    def secure_sum() -> array[int]:
        inbox: list[list[array[int]]] = [[] for _ in range(parties)]
        for vector in vectors:
            for holder, part in enumerate(share_words(vector, parties)):
                inbox[holder].append(part)
        sums = [sum_words(received) for received in inbox]
        return sum_words(sums)

    with _SumCounter() as counter:
        total = secure_sum()
    assert total == plain_total
    # Unit costs before and after the timed runs, averaged (as `_Cost`).
    byte_cost, add_cost = _random_byte_cost(), _addition_cost()
    elapsed = _best_of(3, secure_sum)
    byte_cost = (byte_cost + _random_byte_cost()) / 2
    add_cost = (add_cost + _addition_cost()) / 2
    floor = counter.random_bytes * byte_cost + counter.additions * add_cost
    note = (
        f"{counter.random_bytes / 1e6:,.0f} MB random at "
        f"{byte_cost * 1e9:.3f} ns/B, {counter.additions / 1e6:,.1f} M adds at "
        f"{add_cost * 1e9:.3f} ns; plain sum {plain * 1e3:.1f} ms "
        f"(secure/plain {elapsed / plain:.1f})"
    )
    return elapsed, floor, note


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
        f"{sum(bool(v.duplicate) for v in verdicts):,} duplicates, "
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
            f"{name:<44} {seconds:>9.3f} {floor_s:>9.3f} {ratio:>8.2f}  {note}",
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


def _psi_rows(rows: list[Row], claims: int) -> None:
    for one_sided in (True, False):
        theirs = bench_openmined(claims, directions=1 if one_sided else 2)
        with _Cost() as cost:
            elapsed, mults, _ = bench_psi(claims, 2, one_sided=one_sided)
        if theirs is None:
            note = "openmined-psi not installed"
        else:
            runs = "1 run" if one_sided else "2 runs, one each way"
            note = (
                f"openmined-psi {theirs:.2f} s ({runs}), "
                f"ours/theirs {elapsed / theirs:.2f}"
            )
        kind = "one side learns" if one_sided else "both learn"
        name = f"2-party PSI, {claims:,} each, {kind}"
        rows.append((name, elapsed, mults * cost.value, f"{note}; {mults:,} mults"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--large", action="store_true", help="add 100,000 runs")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        help="comma-separated set sizes for the duplicate and PSI rows "
        "(default 10000, with --large 10000,100000)",
    )
    parser.add_argument(
        "--only",
        choices=KINDS,
        action="append",
        help="run only these rows (repeatable); default all",
    )
    args = parser.parse_args()
    sizes = args.sizes or ([10_000, 100_000] if args.large else [10_000])
    kinds = set(args.only or KINDS)

    print(f"one ristretto255 scalar multiplication: {_mult_cost() * 1e6:.1f} us")
    print(f"load average at the start: {os.getloadavg()}")
    print(f"{'run':<44} {'seconds':>9} {'floor s':>9} {'x floor':>8}  note")
    rows: list[Row] = _Rows()
    if "fraud" in kinds:
        for claims in (500, 10_000):
            with _Cost() as cost:
                elapsed, mults, note = bench_fraud(claims)
            name = f"joint fraud check, {claims:,} claims / 3"
            rows.append((name, elapsed, mults * cost.value, note))
    if "dup" in kinds:
        for claims in sizes:
            with _Cost() as cost:
                elapsed, mults, flagged = bench_psi(claims, 3)
            name = f"duplicate check, 3 insurers x {claims:,}"
            note = f"{flagged:,} flagged; {mults:,} mults"
            rows.append((name, elapsed, mults * cost.value, note))
    if "psi" in kinds:
        for claims in sizes:
            _psi_rows(rows, claims)
    if "sum" in kinds:
        elapsed, floor, note = bench_aggregation(10, 100_000)
        rows.append(("secure sum, 10 parties x 100,000 features", elapsed, floor, note))

    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
