"""Exports: stock, availability and reservations read page by page from one unit of work, so
that a whole export is one snapshot while only a page at a time is in memory."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby

from server.domain.commands import Availability
from server.domain.imports import records
from server.domain.ledger import Ledger
from server.domain.model import Place, Reservation, StockRecord
from server.domain.port import UnitOfWork

PAGE = 1000
"""Records or reservations per page (a page is one streamed message)."""
RESERVATION_PAGE = 100
"""Reservations per page: one may hold up to 1,000 lines."""
GROUP_SKUS = 100
"""SKUs whose availability at one group is computed at once."""


def stock_pages(uow: UnitOfWork) -> Iterator[list[StockRecord]]:
    """Every stock record, by (SKU, location)."""
    after = ("", "")
    while page := records(uow).stock_page(after, PAGE):
        yield page
        after = (page[-1].sku, page[-1].location_id)


def availability_pages(ledger: Ledger, uow: UnitOfWork) -> Iterator[list[Availability]]:
    """Every stock record's availability at its location, then every group's for each SKU
    stocked at a member."""
    for page in stock_pages(uow):
        found: list[Availability] = []
        for sku, stocked in groupby(page, key=lambda record: record.sku):
            places = [Place.location(record.location_id) for record in stocked]
            found += ledger.availability(uow, [sku], places)
        yield found
    after = ""
    while groups := uow.list_groups(after, PAGE):
        for group in groups:
            skus = uow.skus_at(group.location_ids)
            for start in range(0, len(skus), GROUP_SKUS):
                chunk = skus[start : start + GROUP_SKUS]
                yield ledger.availability(uow, chunk, [Place.group(group.id)])
        after = groups[-1].id


def reservation_pages(uow: UnitOfWork) -> Iterator[list[Reservation]]:
    """Every reservation, by id."""
    after = ""
    while page := uow.list_reservations(after, RESERVATION_PAGE):
        yield page
        after = page[-1].id
