"""Coverage interval arithmetic: properties (Hypothesis) and the JSON record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kline_lake.core import ranges as rg
from kline_lake.errors import InputError, LakeError
from kline_lake.lake import coverage

bounds = st.integers(min_value=0, max_value=10_000)
ranges_st = st.lists(
    st.tuples(bounds, bounds).filter(lambda r: r[0] < r[1]), max_size=12
)


def _points(ranges, lo, hi):
    return {x for a, b in ranges for x in range(max(a, lo), min(b, hi))}


@given(ranges_st)
def test_merge_is_sorted_disjoint_and_preserves_points(ranges):
    merged = rg.merge(ranges)
    for (_a1, b1), (a2, _b2) in zip(merged, merged[1:], strict=False):
        assert b1 < a2  # disjoint and not even touching
    assert all(a < b for a, b in merged)
    assert _points(merged, 0, 10_001) == _points(ranges, 0, 10_001)


@given(ranges_st, bounds, bounds)
def test_missing_and_covered_tile_the_request(ranges, x, y):
    start, end = min(x, y), max(x, y)
    missing = rg.subtract(start, end, ranges)
    inside = rg.intersect(start, end, ranges)
    # tile exactly: sorted pieces, no overlap, union is [start, end)
    pieces = sorted(missing + inside)
    cursor = start
    for a, b in pieces:
        assert a == cursor and a < b
        cursor = b
    assert cursor == end or (start == end and not pieces)
    assert not _points(missing, start, end) & _points(ranges, start, end)
    assert _points(inside, start, end) == _points(ranges, start, end)


@given(ranges_st, ranges_st)
def test_union_then_missing_is_empty_inside_added(a, b):
    u = rg.union(a, b)
    for s, e in b:
        assert rg.contains(u, s, e)
        assert rg.subtract(s, e, u) == []


@given(ranges_st)
def test_json_round_trip(ranges):
    assert coverage.loads(coverage.dumps(ranges)) == rg.merge(ranges)


def test_hand_computed_subtract():
    assert rg.subtract(0, 100, [(10, 20), (20, 30), (50, 60)]) == [(0, 10), (30, 50), (60, 100)]
    assert rg.subtract(0, 100, [(0, 100)]) == []
    assert rg.subtract(0, 100, []) == [(0, 100)]
    assert rg.merge([(5, 7), (1, 3), (3, 4)]) == [(1, 4), (5, 7)]


@pytest.mark.parametrize("bad", [[(5, 5)], [(6, 5)], [("a", 5)], [(1,)], [(True, 5)]])
def test_validate_rejects_bad_ranges(bad):
    with pytest.raises(InputError):
        rg.validate(bad)


def test_read_write_and_malformed(tmp_path):
    path = tmp_path / "c" / "x.json"
    assert coverage.read(path) == []
    coverage.write(path, [(3, 4), (1, 2)])
    assert coverage.read(path) == [(1, 2), (3, 4)]
    path.write_text("{not json")
    with pytest.raises(LakeError, match="x.json"):
        coverage.read(path)
    path.write_text('{"version": 1, "ranges": [[5, 1]]}')
    with pytest.raises(LakeError):
        coverage.read(path)
