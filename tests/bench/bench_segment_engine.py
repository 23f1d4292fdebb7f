"""Segment engine benchmark: segment_engine against pyroaring and DuckDB, side by side.

Run with ``python -m tests.bench.bench_segment_engine`` (``make bench``). Every result is checked
against its baseline's; times are medians of interleaved repetitions. Use ``--members`` and
``--orders`` for a smaller run. The matrix of data shapes x package shapes x member counts
(``tests/bench/segment_matrix.py``) runs after the headline table; ``--matrix-sizes`` picks its
member counts (empty: none).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
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
from tests.bench import segment_matrix
from tests.bench.common import cpu_model, log

TODAY = 20_400  # days since 1970-01-01 (2025-11-08)
N_STORES = 200
STORES_50 = list(range(0, N_STORES, 4))  # 50 stores





@dataclass
class Members:
    n: int
    cols: dict[str, npt.NDArray[Any]]


@dataclass
class Orders:
    member: npt.NDArray[np.uint32]
    store: npt.NDArray[np.uint32]
    day: npt.NDArray[np.int32]
    amount: npt.NDArray[np.int64]


def make_members(n: int, rng: np.random.Generator) -> Members:
    cols: dict[str, npt.NDArray[Any]] = {
        "gender": rng.integers(0, 3, n, dtype=np.uint8),
        "card": rng.random(n) < 0.4,
        "store_member": rng.random(n) < 0.6,
        "points": rng.integers(0, 50_001, n, dtype=np.int32),
        "level": rng.integers(0, 10, n, dtype=np.uint8),
        "age": rng.integers(10, 80, n, dtype=np.uint8),
        "last_login_days_ago": rng.integers(0, 731, n, dtype=np.int16),
        "last_order_days_ago": rng.integers(0, 366, n, dtype=np.int16),
        "disabled": rng.random(n) < 0.03,
    }
    return Members(n, cols)


def make_orders(n_orders: int, n_members: int, rng: np.random.Generator) -> Orders:
    # Orders arrive in time order: days ascending over the last 365 days.
    per_day = rng.multinomial(n_orders, np.full(365, 1 / 365))
    day = np.repeat(np.arange(TODAY - 364, TODAY + 1, dtype=np.int32), per_day)
    return Orders(
        member=rng.integers(0, n_members, n_orders, dtype=np.uint32),
        store=rng.integers(0, N_STORES, n_orders, dtype=np.uint32),
        day=day,
        amount=rng.integers(500, 60_000, n_orders, dtype=np.int64),
    )


# The 9-leaf package: (4-way AND) OR (3-way AND), then minus a 2-way OR.
LEAVES: dict[str, tuple[str, dict[str, Any], str]] = {
    # name: (column, condition, SQL)
    "female": ("gender", {"field": "gender", "op": "eq", "value": 1}, "gender = 1"),
    "card": ("card", {"field": "card", "op": "eq", "value": True}, "card"),
    "store_member": ("store_member", {"field": "store_member", "op": "eq", "value": True}, "store_member"),
    "level3": ("level", {"field": "level", "op": "gte", "value": 3}, "level >= 3"),
    "young": ("age", {"field": "age", "op": "between", "value": [20, 35]}, "age BETWEEN 20 AND 35"),
    "rich": ("points", {"field": "points", "op": "gte", "value": 10_000}, "points >= 10000"),
    "active": ("last_login_days_ago", {"field": "last_login_days_ago", "op": "lte", "value": 30}, "last_login_days_ago <= 30"),
    "disabled": ("disabled", {"field": "disabled", "op": "eq", "value": True}, "disabled"),
    "lapsed": ("last_order_days_ago", {"field": "last_order_days_ago", "op": "gte", "value": 300}, "last_order_days_ago >= 300"),
}
AND4 = ["female", "card", "store_member", "level3"]
AND3 = ["young", "rich", "active"]
NOT2 = ["disabled", "lapsed"]

EXPR = {"andnot": [{"or": [{"and": AND4}, {"and": AND3}]}, {"or": NOT2}]}
PACKAGE = {
    "groups": [
        {"op": "include", "all": [LEAVES[k][1] for k in AND4]},
        {"op": "or", "all": [LEAVES[k][1] for k in AND3]},
        {"op": "exclude", "all": [LEAVES["disabled"][1]]},
        {"op": "exclude", "all": [LEAVES["lapsed"][1]]},
    ]
}
ATTR_SQL = (
    "SELECT id FROM members WHERE (("
    + " AND ".join(LEAVES[k][2] for k in AND4)
    + ") OR ("
    + " AND ".join(LEAVES[k][2] for k in AND3)
    + ")) AND NOT ("
    + " OR ".join(LEAVES[k][2] for k in NOT2)
    + ")"
)
WINDOW = {"stores": STORES_50, "from_day": TODAY - 29, "to_day": TODAY}
ORDERS_PACKAGE = {
    "groups": [
        {
            "op": "include",
            "all": [
                {"orders": WINDOW, "metric": "count", "op": "gte", "value": 2},
                {"orders": WINDOW, "metric": "sum", "op": "gte", "value": 80_000},
            ],
        }
    ]
}
ORDERS_SQL = (
    f"SELECT member FROM orders WHERE day BETWEEN {TODAY - 29} AND {TODAY} "
    f"AND store IN ({', '.join(map(str, STORES_50))}) "
    "GROUP BY member HAVING count(*) >= 2 AND sum(amount) >= 80000"
)


def leaf_mask(m: Members, name: str) -> npt.NDArray[np.bool_]:
    col, cond, _ = LEAVES[name]
    v = m.cols[col].astype(np.int64)
    op, x = cond["op"], cond["value"]
    if op == "eq":
        return v == int(x)
    if op == "gte":
        return v >= x
    if op == "lte":
        return v <= x
    if op == "between":
        return (v >= x[0]) & (v <= x[1])
    raise AssertionError(op)


def time_once(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def cpu_seconds() -> float:
    """CPU time of every thread of this process (ours, DuckDB's and pyroaring's work alike)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


CPU_NOTES: list[str] = []


def interleaved(name: str, ours: Callable[[], Any], base: Callable[[], Any], reps: int) -> tuple[float, float]:
    """Median wall seconds of each, alternating which runs first. The median CPU seconds are
    noted too: on a shared machine they say how much work each side does, whatever the load."""
    ours(), base()  # warm up
    a: list[float] = []
    b: list[float] = []
    ca: list[float] = []
    cb: list[float] = []
    for r in range(reps):
        pair = [(ours, a, ca), (base, b, cb)] if r % 2 == 0 else [(base, b, cb), (ours, a, ca)]
        for fn, acc, cacc in pair:
            gc.collect()
            c0 = cpu_seconds()
            acc.append(time_once(fn)[0])
            cacc.append(cpu_seconds() - c0)
    CPU_NOTES.append(
        f"{name}: CPU per call ours {statistics.median(ca) * 1e3:.2f} ms, baseline {statistics.median(cb) * 1e3:.2f} ms"
    )
    return statistics.median(a), statistics.median(b)


@dataclass
class Row:
    what: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--members", type=int, default=10_000_000)
    ap.add_argument("--orders", type=int, default=50_000_000)
    ap.add_argument("--reps", type=int, default=9, help="interleaved repetitions per comparison")
    ap.add_argument("--updates", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--matrix-sizes", default="1M,10M,50M",
                    help=f"member counts of the matrix, out of {', '.join(segment_matrix.SIZES)} (empty: no matrix)")
    args = ap.parse_args(argv)
    matrix_sizes = [s for s in args.matrix_sizes.split(",") if s]
    if unknown := [s for s in matrix_sizes if s not in segment_matrix.SIZES]:
        ap.error(f"--matrix-sizes: unknown {', '.join(unknown)} (choose from {', '.join(segment_matrix.SIZES)})")
    threads = os.cpu_count() or 1
    log(f"machine: {threads} cores, {cpu_model()}; python {platform.python_version()}, duckdb {duckdb.__version__}, pyroaring {pyroaring.__version__}")
    rng = np.random.default_rng(args.seed)

    log(f"generating {args.members:,} members and {args.orders:,} orders")
    members = make_members(args.members, rng)
    orders = make_orders(args.orders, args.members, rng)

    log("building the segment engine index")
    ix = MemberIndex(args.members)
    t_cols, _ = time_once(lambda: [ix.set_column(k, v) for k, v in members.cols.items()])
    t_orders, _ = time_once(lambda: ix.set_orders(orders.member, orders.store, orders.day, orders.amount))
    log(f"  columns in {t_cols:.2f} s, orders in {t_orders:.2f} s")
    report = ix.memory_report()

    log("building the DuckDB tables (2 threads)")
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    src = {"id": np.arange(args.members, dtype=np.uint32), **members.cols}
    con.register("members_src", src)
    con.execute("CREATE TABLE members AS SELECT * FROM members_src")
    con.unregister("members_src")
    con.register("orders_src", {"member": orders.member, "store": orders.store, "day": orders.day, "amount": orders.amount})
    con.execute("CREATE TABLE orders AS SELECT * FROM orders_src")
    con.unregister("orders_src")

    log("building the ready bitmaps")
    masks = {k: leaf_mask(members, k) for k in LEAVES}
    ours_leaves = {k: Bitmap.from_numpy(np.flatnonzero(m).astype(np.uint32)) for k, m in masks.items()}
    pr_leaves = {k: pyroaring.BitMap(np.flatnonzero(m).astype(np.uint32)) for k, m in masks.items()}
    del masks

    rows: list[Row] = []

    def pr_algebra() -> pyroaring.BitMap:
        p = pr_leaves
        a = p[AND4[0]] & p[AND4[1]] & p[AND4[2]] & p[AND4[3]]
        b = p[AND3[0]] & p[AND3[1]] & p[AND3[2]]
        return (a | b) - (p[NOT2[0]] | p[NOT2[1]])

    log("algebra: 9-leaf expression from ready bitmaps vs pyroaring")
    ours_alg = evaluate(EXPR, ours_leaves)
    base_alg = pr_algebra()
    assert ours_alg == Bitmap.deserialize(base_alg.serialize()), "algebra result differs from pyroaring"
    t_ours, t_base = interleaved("algebra", lambda: evaluate(EXPR, ours_leaves), pr_algebra, args.reps)
    rows.append(Row("algebra: 9-leaf package from ready bitmaps", f"{t_ours * 1e3:.2f} ms", f"{t_base * 1e3:.2f} ms (pyroaring)",
                    f"{t_ours / t_base:.2f}x the time", "<= 0.5x", t_ours / t_base <= 0.5))
    log(f"  {len(ours_alg):,} members; ours {t_ours * 1e3:.2f} ms, pyroaring {t_base * 1e3:.2f} ms")

    def duck_ids(sql: str) -> npt.NDArray[Any]:
        return con.execute(sql).fetchnumpy()[sql.split()[1]]

    log("attributes: the same package from the columns vs DuckDB")
    ours_attr = ix.evaluate(PACKAGE)
    base_attr = np.sort(duck_ids(ATTR_SQL))
    assert ours_attr == ours_alg, "package from columns differs from the ready-bitmap expression"
    assert np.array_equal(ours_attr.to_numpy(), base_attr.astype(np.uint32)), "attribute result differs from DuckDB"
    t_ours, t_base = interleaved("attributes", lambda: ix.evaluate(PACKAGE), lambda: duck_ids(ATTR_SQL), args.reps)
    rows.append(Row("attributes: the same package from the columns", f"{t_ours * 1e3:.2f} ms", f"{t_base * 1e3:.2f} ms (DuckDB)",
                    f"{t_base / t_ours:.1f}x faster", ">= 10x faster", t_base / t_ours >= 10))
    log(f"  ours {t_ours * 1e3:.2f} ms, DuckDB {t_base * 1e3:.2f} ms")
    t_count, _ = time_once(lambda: ix.count(PACKAGE))

    log("behaviour: 50 stores, last 30 days, count >= 2 and sum >= 80,000 vs DuckDB GROUP BY HAVING")
    ours_beh = ix.evaluate(ORDERS_PACKAGE)
    base_beh = np.sort(duck_ids(ORDERS_SQL))
    assert np.array_equal(ours_beh.to_numpy(), base_beh.astype(np.uint32)), "behaviour result differs from DuckDB"
    t_ours, t_base = interleaved("behaviour", lambda: ix.evaluate(ORDERS_PACKAGE), lambda: duck_ids(ORDERS_SQL), args.reps)
    rows.append(Row("behaviour: orders at 50 stores, last 30 days, count>=2 and sum>=80,000", f"{t_ours * 1e3:.2f} ms",
                    f"{t_base * 1e3:.2f} ms (DuckDB)", f"{t_base / t_ours:.1f}x faster", ">= 5x faster", t_base / t_ours >= 5))
    log(f"  {len(ours_beh):,} members; ours {t_ours * 1e3:.2f} ms, DuckDB {t_base * 1e3:.2f} ms")

    per_member = sum(report["columns"].values()) / args.members
    per_order = report["orders"] / max(args.orders, 1)
    rows.append(Row("index memory: the 9 member columns", f"{per_member:.1f} B/member", "-", "-", "<= 64 B/member", per_member <= 64))
    rows.append(Row("index memory: orders", f"{per_order:.2f} B/order", "-", "-", "<= 16 B/order", per_order <= 16))

    log(f"freshness: {args.updates:,} point updates through update() in batches of 10,000")
    rates = []
    for col, hi in [("points", 50_001), ("level", 10)]:
        ids = rng.integers(0, args.members, args.updates, dtype=np.uint32)
        vals = rng.integers(0, hi, args.updates)
        batch = 10_000
        t0 = time.perf_counter()
        for s in range(0, args.updates, batch):
            ix.update(col, ids[s : s + batch], vals[s : s + batch])
        rate = args.updates / (time.perf_counter() - t0)
        rates.append((col, rate))
        members.cols[col][ids] = vals.astype(members.cols[col].dtype)  # last write wins, as in update()
        log(f"  {col}: {rate:,.0f} updates/s")
    got, _ = ix.column_values("points")
    assert np.array_equal(got, members.cols["points"].astype(np.int64)), "points differ after updates"
    worst = min(r for _, r in rates)
    rows.append(Row("freshness: point updates through update()", " / ".join(f"{c} {r / 1e6:.2f}M/s" for c, r in rates), "-", "-",
                    ">= 1,000,000/s", worst >= 1e6))

    print()
    print(f"Segment engine benchmark: {args.members:,} members, {args.orders:,} orders; {threads} cores, {cpu_model()}; "
          f"medians of {args.reps} interleaved repetitions")
    print()
    print("| what | ours | baseline | ratio | goal | met |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r.what} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} | {'met' if r.met else 'MISSED'} |")
    print()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("extra: " + "; ".join(CPU_NOTES))
    print(f"extra: load average {load:.2f} at the end (other processes share these {threads} cores)")
    print(f"extra: count(package) {t_count * 1e3:.2f} ms; index build: columns {t_cols:.2f} s, orders {t_orders:.2f} s; "
          f"memory {report['total'] / 2**20:.0f} MiB in all")
    missed = [r.what for r in rows if not r.met]
    if missed:
        print(f"goals missed on this run: {'; '.join(missed)} (see docs/benchmarks.md for what was tried)")
    con.close()
    if matrix_sizes:
        # The headline index and tables go first: the matrix's 50M cells want the memory.
        del ix, members, orders, ours_leaves, pr_leaves, con
        gc.collect()
        lines, notes = segment_matrix.run(matrix_sizes, args.reps, args.seed)
        print()
        print("Segment engine matrix (data shape x package shape x members); medians of interleaved repetitions")
        print()
        print("\n".join(lines))
        print()
        for note in notes:
            print(f"extra: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
