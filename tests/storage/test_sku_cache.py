"""The per-SKU caches are bounded by an estimate of their bytes, not by a count of entries: a
SKU's free stock grows with the locations stocking it, its totals with the membership classes."""

from __future__ import annotations

import numpy as np

from server.domain.coverage import MembershipClasses
from server.domain.port import FreeStock
from server.domain.totals import StockTotals
from server.storage.network_cache import SkuCache, free_stock_bytes, totals_bytes

KEY = (1, 1)


def free_at(locations: int) -> FreeStock:
    units = np.ones(locations, dtype=np.int64)
    return FreeStock(np.arange(locations, dtype=np.int32), units, units.copy())


def test_the_least_recently_used_entries_leave_when_the_budget_is_exceeded() -> None:
    entry = free_at(1000)
    cache: SkuCache[FreeStock] = SkuCache(3 * free_stock_bytes(entry), free_stock_bytes)
    for sku in ("a", "b", "c"):
        cache.put(sku, KEY, entry)
    assert cache.get("a", KEY) is entry  # "a" is now the most recently used
    cache.put("d", KEY, entry)
    assert cache.get("b", KEY) is None
    assert [cache.get(sku, KEY) is entry for sku in ("a", "c", "d")] == [True, True, True]
    assert cache.nbytes == 3 * free_stock_bytes(entry)


def test_one_big_entry_makes_room_by_evicting_several_small_ones() -> None:
    small, big = free_at(100), free_at(2000)
    cache: SkuCache[FreeStock] = SkuCache(free_stock_bytes(big) + 100, free_stock_bytes)
    for sku in ("a", "b", "c"):
        cache.put(sku, KEY, small)
    cache.put("big", KEY, big)
    assert cache.get("big", KEY) is big
    assert [cache.get(sku, KEY) for sku in ("a", "b", "c")] == [None, None, None]


def test_an_entry_larger_than_the_whole_budget_is_not_kept() -> None:
    cache: SkuCache[FreeStock] = SkuCache(1000, free_stock_bytes)
    cache.put("a", KEY, free_at(1000))
    assert cache.get("a", KEY) is None
    assert cache.nbytes == 0


def test_a_replaced_entry_no_longer_counts() -> None:
    cache: SkuCache[FreeStock] = SkuCache(10**6, free_stock_bytes)
    cache.put("a", KEY, free_at(1000))
    cache.put("a", (2, 1), free_at(10))
    assert cache.nbytes == free_stock_bytes(free_at(10))


def test_free_stock_costs_about_twenty_bytes_a_location() -> None:
    assert 20 * 10_000 <= free_stock_bytes(free_at(10_000)) < 21 * 10_000


def test_totals_grow_with_the_membership_classes() -> None:
    def classes(count: int) -> MembershipClasses:
        return MembershipClasses.of({f"g-{k}": [f"l-{k}"] for k in range(count)})

    assert totals_bytes(StockTotals(classes(1000))) > 10 * totals_bytes(StockTotals(classes(10)))
