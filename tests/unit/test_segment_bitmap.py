"""Property tests: segment_engine.Bitmap agrees with pyroaring and Python sets."""

from __future__ import annotations

import pickle

import numpy as np
import pyroaring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_engine import Bitmap

MAX = 2**32 - 1


@st.composite
def id_sets(draw: st.DrawFn) -> set[int]:
    """Empty, sparse, dense, run-heavy and edge-of-range sets of u32 ids."""
    kind = draw(st.sampled_from(["empty", "sparse", "dense", "runs", "edges", "mixed"]))
    if kind == "empty":
        return set()
    if kind == "sparse":
        return set(draw(st.lists(st.integers(0, MAX), max_size=200)))
    if kind == "dense":
        base = draw(st.integers(0, 3)) << 16
        step = draw(st.integers(1, 3))
        n = draw(st.integers(4097, 30000))
        return set(range(base, base + n * step, step))
    if kind == "runs":
        out: set[int] = set()
        for _ in range(draw(st.integers(1, 5))):
            start = draw(st.integers(0, MAX))
            out.update(range(start, min(start + draw(st.integers(1, 70000)), MAX + 1)))
        return out
    if kind == "edges":
        return set(draw(st.lists(st.sampled_from([0, 1, 65535, 65536, MAX - 65536, MAX - 1, MAX]))))
    return (
        set(draw(st.lists(st.integers(0, 200000), max_size=300)))
        | set(range(draw(st.integers(0, 100000)), draw(st.integers(100000, 140000))))
        | {MAX}
    )


def _pr(s: set[int]) -> pyroaring.BitMap:
    return pyroaring.BitMap(sorted(s))


@settings(max_examples=60, deadline=None)
@given(id_sets())
def test_round_trips_with_pyroaring(s: set[int]) -> None:
    _check_round_trip(s)


@pytest.mark.parametrize(
    "s",
    [
        set(),
        {0, 1, 2},
        {0, 1, 2, 3},
        {0, 1, 2, 10, 11},
        {0, 1, 2, 10, 11, 12},
        {i * 32 + j for i in range(2047) for j in range(3)},
        {i * 32 + j for i in range(2048) for j in range(3)},
        set(range(65536)),
        set(range(65536, 3 * 65536)) | {MAX},
        {MAX - 1, MAX},
    ],
    ids=["empty", "3", "4", "5-2runs", "6-2runs", "2047runs", "2048runs", "full", "full2", "top"],
)
def test_run_optimize_boundaries_match_pyroaring(s: set[int]) -> None:
    _check_round_trip(s)


def _check_round_trip(s: set[int]) -> None:
    ours = Bitmap(s)
    theirs = _pr(s)
    assert ours.serialize() == theirs.serialize()  # same run_optimize choices, same bytes
    assert set(pyroaring.BitMap.deserialize(ours.serialize())) == s
    assert set(Bitmap.deserialize(theirs.serialize())) == s
    assert Bitmap.deserialize(ours.serialize()) == ours
    unoptimized = pyroaring.BitMap(sorted(s), optimize=False)
    assert Bitmap.deserialize(unoptimized.serialize()) == ours


@settings(max_examples=60, deadline=None)
@given(id_sets(), id_sets())
def test_operators_agree_with_sets_and_pyroaring(a: set[int], b: set[int]) -> None:
    x, y = Bitmap(a), Bitmap(b)
    pa, pb = _pr(a), _pr(b)
    for ours, theirs, expected in [
        (x & y, pa & pb, a & b),
        (x | y, pa | pb, a | b),
        (x - y, pa - pb, a - b),
        (x ^ y, pa ^ pb, a ^ b),
    ]:
        assert list(ours) == sorted(expected)
        assert len(ours) == len(theirs)
        assert ours == Bitmap.deserialize(theirs.serialize())
    assert x.intersection_len(y) == len(a & b)
    assert x.union_len(y) == len(a | b)
    assert x.difference_len(y) == len(a - b)


@settings(max_examples=40, deadline=None)
@given(id_sets(), st.lists(id_sets(), max_size=3))
def test_named_methods_agree_with_set_methods(a: set[int], others: list[set[int]]) -> None:
    x, ys = Bitmap(a), [Bitmap(o) for o in others]
    assert list(x.union(*ys)) == sorted(a.union(*others))
    assert list(x.intersection(*ys)) == sorted(a.intersection(*others))
    assert list(x.difference(*ys)) == sorted(a.difference(*others))
    assert x.union(*ys) == Bitmap(a.union(*others))
    for y, o in zip(ys, others):
        assert list(x.symmetric_difference(y)) == sorted(a.symmetric_difference(o))


def test_named_methods_take_only_bitmaps() -> None:
    with pytest.raises(TypeError):
        Bitmap([1]).union([2])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Bitmap([1]).difference_len({2})  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(id_sets(), st.integers(0, 5000), st.integers(0, 5000))
def test_protocol_numpy_and_page(s: set[int], offset: int, limit: int) -> None:
    b = Bitmap(s)
    ordered = sorted(s)
    assert len(b) == len(s)
    assert bool(b) == bool(s)
    assert list(b) == ordered
    arr = b.to_numpy()
    assert arr.dtype == np.uint32
    assert arr.tolist() == ordered
    assert Bitmap.from_numpy(arr) == b
    assert b.page(offset, limit).tolist() == ordered[offset : offset + limit]
    for v in ordered[:20]:
        assert v in b
    assert -1 not in b
    assert MAX + 1 not in b
    assert pickle.loads(pickle.dumps(b)) == b


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64])
def test_from_numpy_takes_every_integer_dtype(dtype: type) -> None:
    arr = np.array([5, 3, 3, 0, 100], dtype=dtype)
    assert list(Bitmap.from_numpy(arr)) == [0, 3, 5, 100]
    assert list(Bitmap.from_numpy(arr[::2])) == [3, 5, 100]


@pytest.mark.parametrize(
    "bad",
    [np.array([-1], dtype=np.int64), np.array([2**32], dtype=np.uint64), np.array([1.0]), np.zeros((2, 2), dtype=np.int32), [1, 2]],
)
def test_from_numpy_rejects_bad_input(bad: object) -> None:
    with pytest.raises(ValueError, match="array"):
        Bitmap.from_numpy(bad)


def test_constructor_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="iterable"):
        Bitmap([-1])
    with pytest.raises(ValueError, match="iterable"):
        Bitmap([2**32])
    with pytest.raises(ValueError, match="iterable"):
        Bitmap(["x"])


def test_page_rejects_negative() -> None:
    with pytest.raises(ValueError, match="offset"):
        Bitmap([1]).page(-1, 1)
    with pytest.raises(ValueError, match="limit"):
        Bitmap([1]).page(0, -1)


@settings(max_examples=150, deadline=None)
@given(id_sets(), st.data())
def test_corrupt_bytes_raise_value_error(s: set[int], data: st.DataObject) -> None:
    raw = bytearray(Bitmap(s).serialize())
    if data.draw(st.booleans()) and len(raw) > 0:
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
    try:
        out = Bitmap.deserialize(bytes(raw))
    except ValueError:
        return
    assert len(out) == len(list(out))


def test_random_bytes_never_crash() -> None:
    rng = np.random.default_rng(7)
    for n in [0, 1, 3, 4, 8, 16, 100, 9000]:
        for _ in range(50):
            try:
                Bitmap.deserialize(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
            except ValueError:
                pass
    for cookie in [b"\x3a\x30\x00\x00", b"\x3b\x30\x00\x00"]:
        for tail in [b"", b"\x01\x00\x00\x00", b"\xff\xff\xff\xff" * 4]:
            with pytest.raises(ValueError):
                Bitmap.deserialize(cookie + tail)
