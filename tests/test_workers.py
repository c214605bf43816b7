"""How work is cut into chunks for the forked workers: every item once, in order; chunks of
``least`` to ``most`` items; smaller towards the end, so the workers finish together."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eventfeed.workers import _chunks


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    count=st.integers(0, 50_000),
    jobs=st.integers(1, 4),
    least=st.integers(1, 200),
    most=st.none() | st.integers(200, 2_000),
)
def test_every_item_once_in_order_in_chunks_that_shrink(
    count: int, jobs: int, least: int, most: int | None
) -> None:
    found = _chunks(count, jobs, least, most)
    assert [i for start, end in found for i in range(start, end)] == list(range(count))
    sizes = [end - start for start, end in found]
    assert all(size >= least for size in sizes[:-1])
    assert most is None or all(size <= most for size in sizes)
    assert sizes == sorted(sizes, reverse=True)


def test_the_last_chunks_are_small() -> None:
    sizes = [end - start for start, end in _chunks(10_000, 2, 50, 1_000)]
    assert sizes[0] == 625  # about eight chunks per worker at first
    assert sizes[-4:] == [50, 50, 50, 36]  # the workers' last chunks take moments
    assert len(sizes) == 25
