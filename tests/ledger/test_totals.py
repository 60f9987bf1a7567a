"""StockTotals kept up to date record by record (`replace`) equal the totals summed afresh
from the records they end with: what lets a write hand its totals on instead of making the
next reader sum every member of a big group again."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.coverage import MembershipClasses
from server.domain.model import Future, StockRecord
from server.domain.totals import StockTotals

SKU = "sku-1"
MEMBERS = {"west": ("a", "b", "c"), "east": ("c", "d"), "all": ("a", "b", "c", "d", "e")}
LOCATIONS = ("a", "b", "c", "d", "e", "outside")


@st.composite
def records(draw: st.DrawFn, location: str, not_before: int | None) -> StockRecord:
    on_hand = draw(st.integers(0, 9))
    # Effective times never go back; a record never set by the back office has none.
    later = st.integers(0, 3).map(lambda step: (not_before or 0) + step)
    effective = draw(later if not_before is not None else st.none() | later)
    return StockRecord(
        SKU,
        location,
        on_hand=on_hand,
        safety_stock=draw(st.integers(0, 3)),
        futures=tuple(
            Future(units, draw(st.sampled_from([None, 10, 20])))
            for units in draw(st.lists(st.integers(1, 4), max_size=2))
        ),
        reserved=draw(st.integers(0, on_hand)),
        effective_us=effective,
    )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_totals_replaced_record_by_record_equal_the_totals_summed_afresh(data):
    classes = MembershipClasses.of(MEMBERS)
    current: dict[str, StockRecord] = {}
    totals = StockTotals.of(current.values(), classes).copy()
    for _ in range(data.draw(st.integers(1, 12), label="changes")):
        location = data.draw(st.sampled_from(LOCATIONS), label="location")
        old = current.get(location, StockRecord(SKU, location))
        new = data.draw(records(location, old.effective_us), label="record")
        current[location] = new
        if (k := classes.class_of.get(location)) is not None:
            totals.replace(k, old, new)
    summed = StockTotals.of(current.values(), classes)
    assert (totals.values == summed.values).all()
    assert (totals.effective_us == summed.effective_us).all()
    assert {k: by_time for k, by_time in totals.futures.items() if by_time} == summed.futures
