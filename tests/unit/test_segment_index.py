"""Property tests: MemberIndex packages agree with a plain numpy (and SQL) evaluation of the same data."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_engine import Bitmap, MemberIndex

I64 = np.iinfo(np.int64)
N = 140_000  # two full 64K blocks and a partial one
OPS = ["eq", "ne", "in", "not_in", "between", "gte", "lte", "gt", "lt"]
METRICS = ["count", "sum", "max", "avg", "distinct_stores", "first_day", "last_day"]
Mask = npt.NDArray[np.bool_]


@dataclass
class Data:
    n: int
    columns: dict[str, tuple[npt.NDArray[Any], Mask]] = field(default_factory=dict)
    bitmaps: dict[str, Mask] = field(default_factory=dict)
    orders: dict[str, npt.NDArray[Any]] = field(default_factory=dict)


def make_data(n: int, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    d = Data(n)
    everyone = np.ones(n, dtype=bool)
    d.columns["gender"] = (rng.integers(0, 3, n), everyone)
    d.columns["level"] = (rng.integers(0, 10, n).astype(np.uint8), rng.random(n) > 0.1)
    d.columns["card"] = (rng.random(n) < 0.5, everyone)
    d.columns["points"] = (rng.integers(0, 50_001, n).astype(np.int32), rng.random(n) > 0.05)
    d.columns["delta"] = (rng.integers(-1000, 1001, n).astype(np.int16), everyone)
    extreme = rng.integers(-(2**62), 2**62, n)
    extreme[rng.integers(0, n, 50)] = I64.min
    extreme[rng.integers(0, n, 50)] = I64.max
    extreme[rng.integers(0, n, 50)] = 0
    d.columns["extreme"] = (extreme, everyone)
    d.columns["rare"] = (rng.integers(0, 100_000, n), rng.random(n) < 0.01)
    runs = np.zeros(n, dtype=bool)
    for s in rng.integers(0, n, 8):
        runs[s : s + int(rng.integers(1, 30_000))] = True
    d.bitmaps = {
        "sparse": rng.random(n) < 0.01,
        "dense": rng.random(n) < 0.5,
        "runs": runs,
        "empty": np.zeros(n, dtype=bool),
        "all": np.ones(n, dtype=bool),
    }
    m = 30_000
    d.orders = {
        "member": np.concatenate(
            [rng.choice(rng.integers(0, n, 6000), m - 2000), rng.zipf(1.3, 2000) * 37 % n, [0, n - 1]]
        ).astype(np.uint32)[:m],
        "store": rng.integers(0, 15, m).astype(np.uint32) * 7 + 100,
        "day": rng.integers(19_000, 19_060, m).astype(np.int32),
        "amount": rng.integers(0, 100_000, m).astype(np.int64),
    }
    return d


def build_index(d: Data) -> MemberIndex:
    ix = MemberIndex(d.n)
    for name, (values, valid) in d.columns.items():
        ix.set_column(name, values, None if valid.all() else valid)
    for name, mask in d.bitmaps.items():
        ix.set_bitmap(name, Bitmap.from_numpy(np.flatnonzero(mask)))
    o = d.orders
    ix.set_orders(o["member"], o["store"], o["day"], o["amount"])
    return ix


DATA = make_data(N, 1)
INDEX = build_index(DATA)


def ref_pred(x: npt.NDArray[Any], op: str, v: Any) -> Mask:
    x = x.astype(object) if x.dtype == np.int64 else x.astype(np.int64)
    match op:
        case "eq":
            out = x == v
        case "ne":
            out = x != v
        case "in":
            out = np.isin(x, np.array(v, dtype=object)) if v else np.zeros(len(x), dtype=bool)
        case "not_in":
            out = ~np.isin(x, np.array(v, dtype=object)) if v else np.ones(len(x), dtype=bool)
        case "between":
            out = (x >= v[0]) & (x <= v[1])
        case "gte":
            out = x >= v
        case "lte":
            out = x <= v
        case "gt":
            out = x > v
        case "lt":
            out = x < v
        case _:
            raise AssertionError(op)
    return np.asarray(out, dtype=bool)


def ref_avg(s: npt.NDArray[Any], c: npt.NDArray[Any], op: str, v: Any) -> Mask:
    s = s.astype(object)
    c = c.astype(object)
    match op:
        case "eq":
            return np.asarray(s == v * c, dtype=bool)
        case "ne":
            return np.asarray(s != v * c, dtype=bool)
        case "in":
            return np.logical_or.reduce([np.asarray(s == x * c, dtype=bool) for x in v] + [np.zeros(len(s), bool)])
        case "not_in":
            return ~np.logical_or.reduce([np.asarray(s == x * c, dtype=bool) for x in v] + [np.zeros(len(s), bool)])
        case "between":
            return np.asarray((s >= v[0] * c) & (s <= v[1] * c), dtype=bool)
        case "gte":
            return np.asarray(s >= v * c, dtype=bool)
        case "lte":
            return np.asarray(s <= v * c, dtype=bool)
        case "gt":
            return np.asarray(s > v * c, dtype=bool)
        case "lt":
            return np.asarray(s < v * c, dtype=bool)
    raise AssertionError(op)


def ref_metric(d: Data, window: dict[str, Any], metric: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any], Mask]:
    """Per-member (value, count, has_orders) over the window, as SQL GROUP BY would give."""
    o = d.orders
    sel = (o["day"] >= window["from_day"]) & (o["day"] <= window["to_day"])
    if window.get("stores") is not None:
        sel &= np.isin(o["store"], np.array(window["stores"], dtype=np.int64))
    m, s, dd, a = o["member"][sel].astype(np.int64), o["store"][sel], o["day"][sel], o["amount"][sel]
    cnt = np.bincount(m, minlength=d.n)
    has = cnt > 0
    sm = np.zeros(d.n, dtype=np.int64)
    np.add.at(sm, m, a)
    match metric:
        case "count":
            val = cnt
        case "sum" | "avg":
            val = sm
        case "max":
            val = np.full(d.n, I64.min)
            np.maximum.at(val, m, a)
        case "distinct_stores":
            pairs = np.unique(m * 10_000 + s)
            val = np.bincount(pairs // 10_000, minlength=d.n)
        case "first_day":
            val = np.full(d.n, 2**31 - 1, dtype=np.int64)
            np.minimum.at(val, m, dd)
        case "last_day":
            val = np.full(d.n, -(2**31), dtype=np.int64)
            np.maximum.at(val, m, dd)
        case _:
            raise AssertionError(metric)
    return val, cnt, has


def ref_cond(d: Data, c: dict[str, Any]) -> Mask:
    if "field" in c:
        values, valid = d.columns[c["field"]]
        return valid & ref_pred(values, c["op"], c["value"])
    if "bitmap" in c:
        return d.bitmaps[c["bitmap"]].copy()
    if "not_bitmap" in c:
        return ~d.bitmaps[c["not_bitmap"]]
    val, cnt, has = ref_metric(d, c["orders"], c["metric"])
    if c["metric"] == "avg":
        return has & ref_avg(val, cnt, c["op"], c["value"])
    return has & ref_pred(val, c["op"], c["value"])


def ref_package(d: Data, pkg: dict[str, Any]) -> npt.NDArray[np.int64]:
    out: Mask | None = None
    for g in pkg["groups"]:
        m = np.logical_and.reduce([ref_cond(d, c) for c in g["all"]])
        if out is None:
            out = m
        elif g["op"] == "or":
            out = out | m
        elif g["op"] == "exclude":
            out = out & ~m
        else:
            out = out & m
    assert out is not None
    return np.flatnonzero(out)


# ---- strategies -------------------------------------------------------------------------------

FIELD_VALUES: dict[str, st.SearchStrategy[int]] = {
    "gender": st.integers(-1, 3),
    "level": st.integers(-1, 10),
    "card": st.sampled_from([True, False, 0, 1]),
    "points": st.one_of(st.integers(-5, 50_005), st.sampled_from([0, 50_000, 25_000])),
    "delta": st.integers(-1100, 1100),
    "extreme": st.one_of(st.sampled_from([I64.min, I64.min + 1, -1, 0, 1, I64.max - 1, I64.max]), st.integers(-(2**62), 2**62)),
    "rare": st.integers(-1, 100_001),
}


def value_for(op: str, scalar: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    if op in ("in", "not_in"):
        return st.lists(scalar, max_size=4)
    if op == "between":
        return st.tuples(scalar, scalar).map(lambda t: [min(t), max(t)])
    return scalar


@st.composite
def field_conds(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(FIELD_VALUES)))
    op = draw(st.sampled_from(OPS))
    return {"field": name, "op": op, "value": draw(value_for(op, FIELD_VALUES[name]))}


@st.composite
def orders_conds(draw: st.DrawFn) -> dict[str, Any]:
    lo = draw(st.integers(18_990, 19_070))
    hi = draw(st.integers(lo, 19_075))
    stores = draw(st.one_of(st.none(), st.lists(st.sampled_from([100 + 7 * i for i in range(15)] + [5, 999]), max_size=6)))
    metric = draw(st.sampled_from(METRICS))
    scalar = {
        "count": st.integers(0, 9),
        "sum": st.integers(0, 600_000),
        "max": st.integers(0, 100_000),
        "avg": st.integers(0, 100_000),
        "distinct_stores": st.integers(0, 7),
        "first_day": st.integers(18_995, 19_065),
        "last_day": st.integers(18_995, 19_065),
    }[metric]
    op = draw(st.sampled_from(OPS))
    return {
        "orders": {"stores": stores, "from_day": lo, "to_day": hi},
        "metric": metric,
        "op": op,
        "value": draw(value_for(op, scalar)),
    }


conds = st.one_of(
    field_conds(),
    field_conds(),
    st.sampled_from(sorted(DATA.bitmaps)).map(lambda b: {"bitmap": b}),
    st.sampled_from(sorted(DATA.bitmaps)).map(lambda b: {"not_bitmap": b}),
    orders_conds(),
)


@st.composite
def packages(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    groups = []
    for i in range(n):
        op = "include" if i == 0 else draw(st.sampled_from(["or", "exclude", "include"]))
        groups.append({"op": op, "all": draw(st.lists(conds, min_size=1, max_size=3))})
    return {"groups": groups}


# ---- tests ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(packages())
def test_random_packages_agree_with_numpy(pkg: dict[str, Any]) -> None:
    expected = ref_package(DATA, pkg)
    got = INDEX.evaluate(pkg)
    assert got.to_numpy().tolist() == expected.tolist()
    assert INDEX.count(pkg) == len(expected)


@pytest.fixture(scope="module")
def large() -> tuple[Data, MemberIndex]:
    d = make_data(2_500_000, 3)
    return d, build_index(d)


@settings(max_examples=25, deadline=None)
@given(packages())
def test_random_packages_over_many_blocks_agree_with_numpy(large: tuple[Data, MemberIndex], pkg: dict[str, Any]) -> None:
    """Over 39 blocks a package may run long enough for the engine to wake a helper thread
    partway (when a core is free), the blocks then going to whichever thread takes them."""
    d, ix = large
    expected = ref_package(d, pkg)
    assert ix.evaluate(pkg).to_numpy().tolist() == expected.tolist()
    assert ix.count(pkg) == len(expected)


@settings(max_examples=60, deadline=None)
@given(field_conds())
def test_every_field_op_agrees(c: dict[str, Any]) -> None:
    pkg = {"groups": [{"op": "include", "all": [c]}]}
    assert INDEX.evaluate(pkg).to_numpy().tolist() == ref_package(DATA, pkg).tolist()


@settings(max_examples=80, deadline=None)
@given(orders_conds())
def test_every_orders_metric_agrees(c: dict[str, Any]) -> None:
    pkg = {"groups": [{"op": "include", "all": [c]}]}
    assert INDEX.evaluate(pkg).to_numpy().tolist() == ref_package(DATA, pkg).tolist()


def test_orders_agree_with_sql_group_by_having() -> None:
    duckdb = pytest.importorskip("duckdb")
    o = DATA.orders
    con = duckdb.connect()
    con.register("orders", {k: v for k, v in o.items()})
    sql = """
        SELECT member FROM orders
        WHERE day BETWEEN 19010 AND 19040 AND store IN (100, 107, 114, 121)
        GROUP BY member
        HAVING count(*) >= 2 AND sum(amount) >= 80000 AND max(amount) < 90000
           AND count(DISTINCT store) >= 1 AND sum(amount) >= 30000 * count(*)
        ORDER BY member
    """
    expected = [r[0] for r in con.execute(sql).fetchall()]
    w = {"stores": [100, 107, 114, 121], "from_day": 19010, "to_day": 19040}
    pkg = {
        "groups": [
            {
                "op": "include",
                "all": [
                    {"orders": w, "metric": "count", "op": "gte", "value": 2},
                    {"orders": w, "metric": "sum", "op": "gte", "value": 80000},
                    {"orders": w, "metric": "max", "op": "lt", "value": 90000},
                    {"orders": w, "metric": "distinct_stores", "op": "gte", "value": 1},
                    {"orders": w, "metric": "avg", "op": "gte", "value": 30000},
                ],
            }
        ]
    }
    assert INDEX.evaluate(pkg).to_numpy().tolist() == expected
    con.close()


def test_avg_compares_exactly() -> None:
    ix = MemberIndex(3)
    ix.set_orders(
        np.array([0, 0, 1, 1, 1], dtype=np.uint32),
        np.array([1, 1, 1, 1, 1], dtype=np.uint32),
        np.array([5, 5, 5, 5, 5], dtype=np.int32),
        np.array([3, 4, 1, 1, 2], dtype=np.int64),
    )
    w = {"stores": None, "from_day": 0, "to_day": 10}

    def avg(op: str, v: Any) -> list[int]:
        return list(ix.evaluate({"groups": [{"op": "include", "all": [{"orders": w, "metric": "avg", "op": op, "value": v}]}]}))

    # member 0: avg 3.5; member 1: avg 4/3; member 2: no orders, never matches
    assert avg("gte", 3) == [0]
    assert avg("gt", 3) == [0]
    assert avg("lte", 3) == [1]
    assert avg("lt", 4) == [0, 1]
    assert avg("eq", 1) == []
    assert avg("ne", 1) == [0, 1]
    assert avg("between", [1, 3]) == [1]
    assert avg("not_in", [3, 4]) == [0, 1]


def test_nulls_match_no_comparison() -> None:
    ix = MemberIndex(4)
    ix.set_column("x", np.array([1, 2, 3, 4]), valid=np.array([True, False, True, False]))
    for op, v, want in [("ne", 3, [0]), ("not_in", [1], [2]), ("gte", 0, [0, 2]), ("lt", 100, [0, 2]), ("eq", 2, [])]:
        got = list(ix.evaluate({"groups": [{"op": "include", "all": [{"field": "x", "op": op, "value": v}]}]}))
        assert got == want, (op, v)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_point_updates_agree_with_numpy(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 70_000))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(-50, 50, n)
    valid = rng.random(n) > 0.1
    ix = MemberIndex(n)
    ix.set_column("v", values, valid)
    for _ in range(data.draw(st.integers(1, 4))):
        k = data.draw(st.integers(1, 300))
        ids = rng.integers(0, n, k)
        span = data.draw(st.sampled_from([10, 1000, 2**40, 2**62]))
        new = rng.integers(-span, span, k)
        ok = rng.random(k) > 0.2
        ix.update("v", ids, new, ok)
        for i, x, good in zip(ids, new, ok, strict=True):
            values[i] = x
            valid[i] = good
    got_values, got_valid = ix.column_values("v")
    assert got_valid.tolist() == valid.tolist()
    assert got_values[valid].tolist() == values[valid].tolist()
    for op, v in [("gte", 0), ("between", [-20, 20]), ("ne", 3), ("eq", int(values[valid][0]) if valid.any() else 0)]:
        pkg = {"groups": [{"op": "include", "all": [{"field": "v", "op": op, "value": v}]}]}
        assert ix.evaluate(pkg).to_numpy().tolist() == np.flatnonzero(valid & ref_pred(values, op, v)).tolist()


def test_low_cardinality_column_grows_into_bit_slices() -> None:
    n = 1000
    ix = MemberIndex(n)
    values = np.zeros(n, dtype=np.int64)
    ix.set_column("c", values)
    ids = np.arange(200)
    ix.update("c", ids, ids * 3)
    values[:200] = ids * 3
    pkg = {"groups": [{"op": "include", "all": [{"field": "c", "op": "between", "value": [30, 300]}]}]}
    assert ix.evaluate(pkg).to_numpy().tolist() == np.flatnonzero((values >= 30) & (values <= 300)).tolist()


def test_grow_and_append_orders() -> None:
    ix = MemberIndex(10)
    ix.set_column("x", np.arange(10))
    ix.set_bitmap("b", Bitmap([1, 2]))
    with pytest.raises(ValueError, match="member"):
        ix.append_orders(np.array([10], dtype=np.uint32), np.array([1], dtype=np.uint32), np.array([1], dtype=np.int32), np.array([5]))
    ix.grow(20)
    assert ix.n_members == 20
    ix.append_orders(np.array([15, 15], dtype=np.uint32), np.array([1, 2], dtype=np.uint32), np.array([1, 2], dtype=np.int32), np.array([5, 6]))
    ix.append_orders(np.array([15, 3], dtype=np.uint32), np.array([1, 1], dtype=np.uint32), np.array([1, 3], dtype=np.int32), np.array([7, 1]))
    assert ix.n_orders == 4
    w = {"stores": None, "from_day": 0, "to_day": 5}
    pkg = {"groups": [{"op": "include", "all": [{"orders": w, "metric": "sum", "op": "gte", "value": 18}]}]}
    assert list(ix.evaluate(pkg)) == [15]
    nb = {"groups": [{"op": "include", "all": [{"not_bitmap": "b"}]}]}
    assert list(ix.evaluate(nb)) == [0] + list(range(3, 20))
    ne = {"groups": [{"op": "include", "all": [{"field": "x", "op": "ne", "value": 3}]}]}
    assert list(ix.evaluate(ne)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    ix.update("x", np.array([12]), np.array([3]))
    assert list(ix.evaluate(ne)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert ix.count({"groups": [{"op": "include", "all": [{"field": "x", "op": "eq", "value": 3}]}]}) == 2
    with pytest.raises(ValueError, match="n_members"):
        ix.grow(5)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "index.snap"
    INDEX.save(path)
    loaded = MemberIndex.load(str(path))
    assert loaded.n_members == INDEX.n_members
    assert loaded.n_orders == INDEX.n_orders
    assert loaded.columns() == INDEX.columns()
    assert loaded.bitmaps() == INDEX.bitmaps()
    for name in INDEX.columns():
        a, b = INDEX.column_values(name), loaded.column_values(name)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    w = {"stores": [100, 107], "from_day": 19_000, "to_day": 19_030}
    pkg = {
        "groups": [
            {"op": "include", "all": [{"field": "points", "op": "gte", "value": 20_000}, {"bitmap": "dense"}]},
            {"op": "or", "all": [{"orders": w, "metric": "count", "op": "gte", "value": 1}]},
        ]
    }
    assert loaded.evaluate(pkg) == INDEX.evaluate(pkg)
    raw = path.read_bytes()
    for cut in [0, 7, 12, len(raw) // 2, len(raw) - 1]:
        path.write_bytes(raw[:cut])
        with pytest.raises(ValueError):
            MemberIndex.load(path)
    rng = np.random.default_rng(0)
    for _ in range(20):
        damaged = bytearray(raw)
        for i in rng.integers(0, len(raw), 4):
            damaged[i] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            MemberIndex.load(path)
        except ValueError:
            pass
    with pytest.raises(FileNotFoundError):
        MemberIndex.load(tmp_path / "missing.snap")


def test_concurrent_readers_and_writer() -> None:
    n = 200_000
    rng = np.random.default_rng(3)
    ix = MemberIndex(n)
    ix.set_column("p", rng.integers(0, 1000, n))
    pkg = {"groups": [{"op": "include", "all": [{"field": "p", "op": "gte", "value": 500}]}]}
    errors: list[BaseException] = []
    counts: list[int] = []

    def reader() -> None:
        try:
            for _ in range(30):
                counts.append(ix.count(pkg))
                ix.evaluate(pkg)
        except BaseException as e:  # noqa: BLE001 - reported to the test thread - collected and re-raised below
            errors.append(e)

    def writer() -> None:
        try:
            for _ in range(30):
                ids = rng.integers(0, n, 1000)
                ix.update("p", ids, rng.integers(0, 1000, 1000))
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    values, _ = ix.column_values("p")
    assert ix.count(pkg) == int((values >= 500).sum())


def _pkg(*conds: dict[str, Any], op: str = "include") -> dict[str, Any]:
    return {"groups": [{"op": op, "all": list(conds)}]}


W = {"stores": None, "from_day": 19_000, "to_day": 19_010}


@pytest.mark.parametrize(
    ("pkg", "match"),
    [
        (_pkg({"field": "nope", "op": "eq", "value": 1}), r'groups\[0\]\.all\[0\]\.field: unknown field "nope"'),
        (_pkg({"field": "gender", "op": "like", "value": 1}), r'groups\[0\]\.all\[0\]\.op: unknown op "like"'),
        (_pkg({"field": "gender", "op": "eq", "value": "1"}), r"groups\[0\]\.all\[0\]\.value: value must be an int or bool, got str"),
        (_pkg({"field": "gender", "op": "eq", "value": 1.5}), r"value must be an int or bool, got float"),
        (_pkg({"field": "gender", "op": "eq", "value": [1]}), r"takes a single int or bool"),
        (_pkg({"field": "gender", "op": "in", "value": 1}), r'op "in" takes a list'),
        (_pkg({"field": "gender", "op": "between", "value": [3, 1]}), r"between has low 3 > high 1"),
        (_pkg({"field": "gender", "op": "between", "value": [1]}), r"between takes \[low, high\]"),
        (_pkg({"field": "gender", "op": "eq"}), r'missing "value"'),
        (_pkg({"field": "gender", "op": "eq", "value": 2**70}), r"does not fit in int64"),
        (_pkg({"bitmap": "nope"}), r'unknown bitmap "nope"'),
        (_pkg({"not_bitmap": "nope"}), r'unknown bitmap "nope"'),
        (_pkg({"orders": W, "metric": "median", "op": "eq", "value": 1}), r'groups\[0\]\.all\[0\]\.metric: unknown metric "median"'),
        (_pkg({"orders": W, "metric": "sum", "op": "eq", "value": None}), r"value must be an int or bool, got NoneType"),
        (_pkg({"orders": {"stores": None, "from_day": 5, "to_day": 1}, "metric": "sum", "op": "eq", "value": 1}), r"from_day 5 > to_day 1"),
        (_pkg({"orders": {"stores": "x", "from_day": 1, "to_day": 2}, "metric": "sum", "op": "eq", "value": 1}), r"orders\.stores: must be a list"),
        (_pkg({"orders": {"from_day": 1}, "metric": "sum", "op": "eq", "value": 1}), r'missing "to_day"'),
        (_pkg({"color": "red"}), r"a condition needs one of"),
        (_pkg({"field": "gender", "op": "eq", "value": 1, "extra": 0}), r'unknown key "extra"'),
        (_pkg({"field": "gender", "op": "eq", "value": 1}, op="exclude"), r'first group\'s op must be "include"'),
        (_pkg(op="include"), r"groups\[0\]\.all: a group needs at least one condition"),
        ({"groups": [{"op": "include", "all": [{"bitmap": "dense"}]}, {"op": "minus", "all": [{"bitmap": "dense"}]}]}, r'groups\[1\]\.op: unknown group op "minus"'),
        ({"groups": []}, r"needs at least one group"),
        ({"group": []}, r'unknown key "group"'),
        ([], r"package: must be a dict"),
    ],
)
def test_bad_packages_raise_value_error_naming_the_part(pkg: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        INDEX.evaluate(pkg)
    with pytest.raises(ValueError, match=match):
        INDEX.count(pkg)


def test_bad_index_arguments() -> None:
    ix = MemberIndex(5)
    with pytest.raises(ValueError, match="values has length 4"):
        ix.set_column("x", np.arange(4))
    with pytest.raises(ValueError, match="values must be a 1-d integer numpy array"):
        ix.set_column("x", np.zeros(5))
    with pytest.raises(ValueError, match="valid"):
        ix.set_column("x", np.arange(5), valid=np.ones(5, dtype=np.int8))
    with pytest.raises(ValueError, match="unknown column"):
        ix.update("x", np.array([1]), np.array([1]))
    ix.set_column("x", np.arange(5))
    with pytest.raises(ValueError, match="member_ids"):
        ix.update("x", np.array([7]), np.array([1]))
    with pytest.raises(ValueError, match="holds id 9"):
        ix.set_bitmap("b", Bitmap([9]))
    with pytest.raises(ValueError, match="equal lengths"):
        ix.set_orders(np.array([1], dtype=np.uint32), np.array([], dtype=np.uint32), np.array([1], dtype=np.int32), np.array([1]))
    with pytest.raises(ValueError, match="day"):
        ix.set_orders(np.array([1]), np.array([1]), np.array([2**40]), np.array([1]))
    with pytest.raises(ValueError, match="n_members"):
        MemberIndex(-1)
