"""The segment engine on every shape of data: data shapes x package shapes x member counts.

Each cell builds nine leaf conditions over nine member columns, evaluates one package shape, and
times, in the same run, interleaved with its baseline:

* the algebra: our fused ``evaluate`` over the nine ready leaf Bitmaps against pyroaring's best
  (its many-operand ``BitMap.union``/``intersection``, then ``-``), goal <= 0.5x pyroaring's time;
* the attribute package: ``MemberIndex.evaluate`` from the columns against the same query in
  DuckDB, goal >= 10x faster.

The physical limit of a cell is reading each leaf once at memory bandwidth: the bytes of the
nine ready leaves (their portable size, which is their size in memory) over the read bandwidth
measured in this run (numpy sums over 1 GiB, one thread per core). "of limit" is that time over
ours: 100% would be the bandwidth bound (above 100%, the leaves were still in cache). A "CPU
ratio" column gives the algebra's CPU time per call against pyroaring's (both threads of ours
counted): the work done, which a loaded machine does not change.

Data shapes (how the members of a leaf lie among the ids):

* dense: each member draws its values at random; leaves hold 30-70% of the members (bitsets);
* sparse: the same, with leaves holding 0.2-1% of the members (arrays);
* runs: members were imported in ranges of 1,000-100,000 ids, and a range shares its values
  (run containers);
* mixed: three leaves of each.

Package shapes over leaves L0..L8: ``and`` (one 9-way AND), ``or`` (L0 OR ... OR L6 OR (L7 AND
L8)), ``exclude`` ((L0 AND L1) minus L2, ..., minus L8).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import pyroaring

from segment_engine import Bitmap, MemberIndex, evaluate
from tests.bench.common import cpu_model, log

SHAPES = ["dense", "sparse", "runs", "mixed"]
PACKAGES = ["and", "or", "exclude"]
SIZES = {"1M": 1_000_000, "10M": 10_000_000, "50M": 50_000_000}
# Column kinds of the nine leaves: bool ``eq true``, enum 0..9 ``eq 9``, wide int 0..50,000 ``lt t``.
KINDS = ["bool", "enum", "wide", "bool", "enum", "wide", "bool", "enum", "wide"]
DENSE_F = [0.6, 0.5, 0.4, 0.3, 0.7, 0.55, 0.45, 0.35, 0.65]
SPARSE_F = [0.01, 0.005, 0.002, 0.008, 0.004, 0.006, 0.003, 0.009, 0.007]
WIDE_MAX = 50_000
# Free memory the 50M cells need (the machine is shared; the run's peak stays well under 10 GiB).
NEED_GIB_50M = 8.0


def leaf_style(shape: str, i: int) -> str:
    if shape == "mixed":
        return ["dense", "sparse", "runs"][i % 3]
    return shape


def uniform(n: int, style: str, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """One draw in [0, 1) per member; for ``runs``, one draw per imported range of 1,000-100,000 ids."""
    if style != "runs":
        return rng.random(n)
    lengths = rng.integers(1_000, 100_001, n // 1_000 + 2)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    k = int(np.searchsorted(starts, n, side="left"))
    per_run = rng.random(k)
    return np.repeat(per_run, np.diff(np.minimum(starts[: k + 1], n)))[:n]


@dataclass
class Cell:
    columns: dict[str, npt.NDArray[Any]]
    conds: list[dict[str, Any]]  # package condition per leaf
    sql: list[str]  # SQL predicate per leaf


def make_data(n: int, shape: str, rng: np.random.Generator) -> Cell:
    columns: dict[str, npt.NDArray[Any]] = {}
    conds: list[dict[str, Any]] = []
    sql: list[str] = []
    for i, kind in enumerate(KINDS):
        style = leaf_style(shape, i)
        f = SPARSE_F[i] if style == "sparse" else DENSE_F[i]
        u = uniform(n, style, rng)
        name = f"c{i}"
        if kind == "bool":
            columns[name] = u < f
            conds.append({"field": name, "op": "eq", "value": True})
            sql.append(name)
        elif kind == "enum":
            other = uniform(n, style, rng)
            columns[name] = np.where(u < f, 9, np.minimum((other * 9).astype(np.uint8), 8)).astype(np.uint8)
            conds.append({"field": name, "op": "eq", "value": 9})
            sql.append(f"{name} = 9")
        else:
            columns[name] = np.minimum((u * (WIDE_MAX + 1)).astype(np.int32), WIDE_MAX)
            t = round(f * (WIDE_MAX + 1))
            conds.append({"field": name, "op": "lt", "value": t})
            sql.append(f"{name} < {t}")
        del u
    return Cell(columns, conds, sql)


def package_of(kind: str, conds: list[dict[str, Any]]) -> dict[str, Any]:
    if kind == "and":
        return {"groups": [{"op": "include", "all": conds}]}
    if kind == "or":
        groups = [{"op": "include" if i == 0 else "or", "all": [c]} for i, c in enumerate(conds[:7])]
        return {"groups": [*groups, {"op": "or", "all": conds[7:]}]}
    return {"groups": [{"op": "include", "all": conds[:2]}, *({"op": "exclude", "all": [c]} for c in conds[2:])]}


def expr_of(kind: str) -> Any:
    leaves = [f"L{i}" for i in range(9)]
    if kind == "and":
        return {"and": leaves}
    if kind == "or":
        return {"or": [*leaves[:7], {"and": leaves[7:]}]}
    return {"andnot": [{"and": leaves[:2]}, {"or": leaves[2:]}]}


def sql_of(kind: str, preds: list[str]) -> str:
    if kind == "and":
        where = " AND ".join(preds)
    elif kind == "or":
        where = " OR ".join([*preds[:7], f"({preds[7]} AND {preds[8]})"])
    else:
        where = f"{preds[0]} AND {preds[1]} AND NOT ({' OR '.join(preds[2:])})"
    return f"SELECT id FROM members WHERE {where}"


def pyroaring_of(kind: str, p: list[pyroaring.BitMap]) -> pyroaring.BitMap:
    """pyroaring's fastest form of each package: its many-operand union and intersection."""
    if kind == "and":
        return pyroaring.BitMap.intersection(*p)
    if kind == "or":
        return pyroaring.BitMap.union(*p[:7], p[7] & p[8])
    return (p[0] & p[1]) - pyroaring.BitMap.union(*p[2:])


def read_bandwidth() -> float:
    """Bytes/s read by numpy sums over 1 GiB, one thread per core (the best of five)."""
    threads = os.cpu_count() or 1
    data = np.ones(1 << 27, dtype=np.float64)
    parts = np.array_split(data, threads)
    best = float("inf")
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(np.sum, parts))
        for _ in range(5):
            t0 = time.perf_counter()
            list(pool.map(np.sum, parts))
            best = min(best, time.perf_counter() - t0)
    return data.nbytes / best


def interleaved(ours: Callable[[], Any], base: Callable[[], Any], reps: int) -> tuple[float, float, float, float]:
    """Median wall seconds of each, alternating which runs first, then the median CPU seconds of
    each (this process's, every thread): on a shared machine CPU time says how much work a call
    did whatever the load, while wall time also counts the time the scheduler gave to others."""
    ours(), base()
    a: list[float] = []
    b: list[float] = []
    ca: list[float] = []
    cb: list[float] = []
    for r in range(reps):
        for fn, acc, cacc in ([(ours, a, ca), (base, b, cb)] if r % 2 == 0 else [(base, b, cb), (ours, a, ca)]):
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
            cacc.append(time.process_time() - c0)
    return statistics.median(a), statistics.median(b), statistics.median(ca), statistics.median(cb)


def reps_for(seconds: float, reps: int) -> int:
    """Fewer repetitions where one call of the baseline takes long; at least 3."""
    return max(3, min(reps, int(20 / max(seconds, 1e-6))))


def available_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("inf")


def peak_rss_gib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


@dataclass
class Result:
    size: str
    shape: str
    package: str
    matched: int
    leaf_mib: float
    alg_ours: float
    alg_base: float
    alg_cpu_ours: float
    alg_cpu_base: float
    attr_ours: float
    attr_base: float
    limit: float


def run_size(label: str, n: int, reps: int, bandwidth: float, rng: np.random.Generator) -> list[Result]:
    threads = os.cpu_count() or 1
    out: list[Result] = []
    for shape in SHAPES:
        log(f"matrix {label} {shape}: generating and indexing {n:,} members")
        cell = make_data(n, shape, rng)
        ix = MemberIndex(n)
        for name, values in cell.columns.items():
            ix.set_column(name, values)
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        con.register("src", {"id": np.arange(n, dtype=np.uint32), **cell.columns})
        con.execute("CREATE TABLE members AS SELECT * FROM src")
        con.unregister("src")
        ours_leaves: dict[str, Bitmap] = {}
        pr_leaves: list[pyroaring.BitMap] = []
        for i, cond in enumerate(cell.conds):
            # Both sides get the same leaves, run-optimised as a stored bitmap would be.
            pr = pyroaring.BitMap.deserialize(ix.evaluate({"groups": [{"op": "include", "all": [cond]}]}).serialize())
            pr.run_optimize()
            pr_leaves.append(pr)
            ours_leaves[f"L{i}"] = Bitmap.deserialize(pr.serialize())
        leaf_bytes = sum(len(b.serialize()) for b in ours_leaves.values())
        del cell.columns
        for kind in PACKAGES:
            expr = expr_of(kind)
            pkg = package_of(kind, cell.conds)
            sql = sql_of(kind, cell.sql)
            got = evaluate(expr, ours_leaves)
            base = pyroaring_of(kind, pr_leaves)
            assert got == Bitmap.deserialize(base.serialize()), f"{label} {shape} {kind}: algebra differs from pyroaring"
            from_cols = ix.evaluate(pkg)
            assert from_cols == got, f"{label} {shape} {kind}: package from columns differs from the algebra"
            t0 = time.perf_counter()
            duck = np.sort(con.execute(sql).fetchnumpy()["id"])
            t_duck = time.perf_counter() - t0
            assert np.array_equal(from_cols.to_numpy(), duck.astype(np.uint32)), f"{label} {shape} {kind}: differs from DuckDB"
            gc.collect()
            alg = interleaved(lambda: evaluate(expr, ours_leaves), lambda: pyroaring_of(kind, pr_leaves), reps)
            attr = interleaved(lambda: ix.evaluate(pkg), lambda: con.execute(sql).fetchnumpy(), reps_for(t_duck, reps))
            r = Result(label, shape, kind, len(got), leaf_bytes / 2**20, alg[0], alg[1], alg[2], alg[3], attr[0],
                       attr[1], leaf_bytes / bandwidth)
            log(f"  {kind}: {len(got):,} members; algebra {alg[0] * 1e3:.3f} vs {alg[1] * 1e3:.3f} ms "
                f"({alg[0] / alg[1]:.2f}x; CPU {alg[2] / max(alg[3], 1e-9):.2f}x); attributes {attr[0] * 1e3:.2f} vs {attr[1] * 1e3:.1f} ms "
                f"({attr[1] / attr[0]:.1f}x); limit {r.limit * 1e3:.3f} ms")
            out.append(r)
        con.close()
        del ix, ours_leaves, pr_leaves
        gc.collect()
    return out


def table(results: list[Result]) -> list[str]:
    lines = [
        "| members | data | package | matched | leaves MiB | algebra ours / pyroaring ms | ratio (goal <= 0.5x) "
        "| CPU ratio | attributes ours / DuckDB ms | speed-up (goal >= 10x) | bandwidth limit ms "
        "| algebra / attributes of limit |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for r in results:
        ra = r.alg_ours / r.alg_base
        su = r.attr_base / r.attr_ours
        lines.append(
            f"| {r.size} | {r.shape} | {r.package} | {r.matched:,} | {r.leaf_mib:.1f} | "
            f"{r.alg_ours * 1e3:.3f} / {r.alg_base * 1e3:.3f} | {ra:.2f}x {'met' if ra <= 0.5 else 'MISSED'} | "
            f"{r.alg_cpu_ours / max(r.alg_cpu_base, 1e-9):.2f}x | "
            f"{r.attr_ours * 1e3:.2f} / {r.attr_base * 1e3:.1f} | {su:.1f}x {'met' if su >= 10 else 'MISSED'} | "
            f"{r.limit * 1e3:.3f} | {r.limit / r.alg_ours:.0%} / {r.limit / r.attr_ours:.0%} |"
        )
    return lines


def run(sizes: list[str], reps: int, seed: int) -> tuple[list[str], list[str]]:
    """Runs the matrix; returns the table's lines and the lines saying which cells missed or were skipped."""
    rng = np.random.default_rng(seed)
    bandwidth = read_bandwidth()
    log(f"matrix: read bandwidth {bandwidth / 1e9:.1f} GB/s ({os.cpu_count()} threads)")
    results: list[Result] = []
    notes = [f"read bandwidth measured in this run: {bandwidth / 1e9:.1f} GB/s (numpy sums over 1 GiB, "
             f"{os.cpu_count()} threads); pyroaring {pyroaring.__version__}, duckdb {duckdb.__version__}"]
    for label in sizes:
        n = SIZES[label]
        if n >= 50_000_000 and available_gib() < NEED_GIB_50M:
            notes.append(f"{label} cells skipped: {available_gib():.1f} GiB available, they need {NEED_GIB_50M:.0f}")
            log(notes[-1])
            continue
        results.extend(run_size(label, n, reps, bandwidth, rng))
    notes.append(f"peak resident memory of the run: {peak_rss_gib():.2f} GiB")
    missed = [f"{r.size} {r.shape} {r.package} ({', '.join(m)})" for r in results
              if (m := [w for w, ok in [("algebra", r.alg_ours / r.alg_base <= 0.5),
                                         ("attributes", r.attr_base / r.attr_ours >= 10)] if not ok])]
    notes.append(f"cells missing a goal: {'; '.join(missed) if missed else 'none'}")
    return table(results), notes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,10M,50M", help=f"comma-separated member counts out of {', '.join(SIZES)}")
    ap.add_argument("--reps", type=int, default=9, help="interleaved repetitions per comparison")
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)
    sizes = [s for s in args.sizes.split(",") if s]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"--sizes: unknown {', '.join(bad)} (choose from {', '.join(SIZES)})")
    lines, notes = run(sizes, args.reps, args.seed)
    print()
    print(f"Segment engine matrix: {os.cpu_count()} cores, {cpu_model()}; medians of interleaved repetitions")
    print()
    print("\n".join(lines))
    print()
    for note in notes:
        print(f"extra: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
