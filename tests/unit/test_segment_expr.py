"""Property tests: segment_engine.evaluate/count agree with pyroaring and Python sets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyroaring
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_engine import Bitmap, count, evaluate

MAX = 2**32 - 1
NAMES = [f"l{i}" for i in range(6)]


def _leaf_sets(seed: int) -> dict[str, set[int]]:
    """Empty, sparse, dense, run-heavy, full-block and edge-of-range leaves over a few 64K blocks."""
    rng = np.random.default_rng(seed)
    span = 4 << 16
    dense = set(np.flatnonzero(rng.random(span) < 0.5).tolist())
    sparse = set(rng.integers(0, span, 300).tolist()) | {MAX, MAX - 70000}
    runs: set[int] = set()
    for start in rng.integers(0, span, 12).tolist():
        runs.update(range(start, start + int(rng.integers(1, 40000))))
    full = set(range(65536, 2 * 65536))
    medium = set(np.flatnonzero(rng.random(span) < 0.05).tolist())
    return {"l0": set(), "l1": sparse, "l2": dense, "l3": runs, "l4": full | {MAX}, "l5": medium}


LEAVES = [_leaf_sets(s) for s in range(3)]
OURS = [{k: Bitmap(v) for k, v in leaves.items()} for leaves in LEAVES]
THEIRS = [{k: pyroaring.BitMap(sorted(v)) for k, v in leaves.items()} for leaves in LEAVES]

exprs = st.recursive(
    st.sampled_from(NAMES),
    lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=4).map(lambda xs: {"and": xs}),
        st.lists(kids, min_size=1, max_size=4).map(lambda xs: {"or": xs}),
        st.tuples(kids, kids).map(lambda t: {"andnot": list(t)}),
    ),
    max_leaves=10,
)


def _ref(e: Any, leaves: dict[str, Any]) -> Any:
    if isinstance(e, str):
        return leaves[e]
    (op, args), = e.items()
    vals = [_ref(a, leaves) for a in args]
    out = vals[0]
    for v in vals[1:]:
        out = out & v if op == "and" else out | v if op == "or" else out - v
    return out


@settings(max_examples=120, deadline=None)
@given(exprs, st.integers(0, 2))
def test_evaluate_agrees_with_pyroaring_and_sets(e: Any, which: int) -> None:
    got = evaluate(e, OURS[which])
    expected_pr = _ref(e, THEIRS[which])
    expected_set = _ref(e, LEAVES[which])
    assert len(got) == len(expected_pr) == len(expected_set)
    assert got == Bitmap.deserialize(expected_pr.serialize())
    assert count(e, OURS[which]) == len(expected_set)
    assert got.to_numpy().tolist() == sorted(expected_set)


def test_benchmark_shape() -> None:
    e = {"andnot": [{"or": [{"and": ["l1", "l2", "l3", "l5"]}, {"and": ["l2", "l4", "l5"]}]}, {"or": ["l0", "l3"]}]}
    assert evaluate(e, OURS[0]) == Bitmap(_ref(e, LEAVES[0]))


def test_large_trees_agree_with_numpy() -> None:
    """Trees over a few million ids, long enough for the engine to wake a helper thread partway
    (when a core is free): the blocks then go to whichever thread takes them, and the result
    must be the same, block for block, as numpy's."""
    rng = np.random.default_rng(7)
    n = 6_000_000
    masks = [rng.random(n) < f for f in (0.6, 0.5, 0.3, 0.005, 0.7, 0.01)]
    leaves = {f"l{i}": Bitmap.from_numpy(np.flatnonzero(m).astype(np.uint32)) for i, m in enumerate(masks)}
    cases = [
        ({"or": ["l0", "l1", "l2", "l3", {"and": ["l4", "l5"]}]}, masks[0] | masks[1] | masks[2] | masks[3] | (masks[4] & masks[5])),
        ({"and": ["l0", "l1", "l4"]}, masks[0] & masks[1] & masks[4]),
        ({"andnot": [{"and": ["l0", "l1"]}, {"or": ["l2", "l3", "l5"]}]}, masks[0] & masks[1] & ~(masks[2] | masks[3] | masks[5])),
        ({"andnot": [{"and": ["l3", "l4"]}, {"or": ["l1", "l5"]}]}, masks[3] & masks[4] & ~(masks[1] | masks[5])),
    ]
    for expr, mask in cases:
        want = np.flatnonzero(mask).astype(np.uint32)
        for _ in range(5):
            got = evaluate(expr, leaves)
            assert np.array_equal(got.to_numpy(), want)
            assert count(expr, leaves) == len(want)


@pytest.mark.parametrize(
    ("expr", "leaves", "match"),
    [
        ("nope", {"a": Bitmap()}, 'unknown leaf "nope"'),
        ({"xor": ["a"]}, {"a": Bitmap()}, 'unknown operator "xor"'),
        ({"and": []}, {"a": Bitmap()}, "at least one operand"),
        ({"andnot": ["a"]}, {"a": Bitmap()}, "exactly two operands"),
        ({"and": "a"}, {"a": Bitmap()}, "must be a list"),
        ({"and": ["a"], "or": ["a"]}, {"a": Bitmap()}, "exactly one key"),
        (3, {"a": Bitmap()}, "leaf name or a dict"),
        ("a", {"a": {1, 2}}, "must be a Bitmap"),
        ("a", [], "leaves must be a dict"),
    ],
)
def test_bad_expressions_raise_value_error(expr: Any, leaves: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        evaluate(expr, leaves)
