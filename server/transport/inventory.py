"""InventoryService: the network, stock levels and availability."""

from __future__ import annotations

from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc

from server.domain.ledger import Ledger
from server.domain.nearby import find_nearby
from server.domain.port import UnitOfWork
from server.transport import convert, paging
from server.transport.status import Context, rpc
from server.transport.transactions import Transactions
from server.transport.validate import inventory as validate

BIG_ANSWER = 200
"""Records above which a GetAvailability answer is read and built on a worker thread: the
largest answers take too long to hold the event loop."""
BIG_BATCH = 100
"""Stock updates above which SetStock and AdjustStock run on a worker thread."""


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, transactions: Transactions, ledger: Ledger) -> None:
        self.tx = transactions
        self.ledger = ledger

    @rpc
    async def UpsertLocations(
        self, request: inv.UpsertLocationsRequest, context: Context
    ) -> inv.UpsertLocationsResponse:
        locations = validate.locations(request)
        return await self.tx.mutate(
            request,
            (),
            lambda uow: inv.UpsertLocationsResponse(
                locations=[
                    convert.location(x) for x in self.ledger.upsert_locations(uow, locations)
                ]
            ),
            network=True,
        )

    @rpc
    async def ListLocations(
        self, request: inv.ListLocationsRequest, context: Context
    ) -> inv.ListLocationsResponse:
        size, after = validate.page(request)
        page, token = await self.tx.query(
            lambda uow: paging.fill(
                uow.list_locations(after, size + 1), size, convert.location, lambda x: x.id
            ),
            big=size > paging.BIG_PAGE,
        )
        return inv.ListLocationsResponse(locations=page, next_page_token=token)

    @rpc
    async def UpsertLocationGroups(
        self, request: inv.UpsertLocationGroupsRequest, context: Context
    ) -> inv.UpsertLocationGroupsResponse:
        groups = validate.location_groups(request)
        return await self.tx.mutate(
            request,
            (),
            lambda uow: inv.UpsertLocationGroupsResponse(
                location_groups=[
                    convert.location_group(x) for x in self.ledger.upsert_groups(uow, groups)
                ]
            ),
            network=True,
        )

    @rpc
    async def ListLocationGroups(
        self, request: inv.ListLocationGroupsRequest, context: Context
    ) -> inv.ListLocationGroupsResponse:
        size, after = validate.page(request)
        page, token = await self.tx.query(
            lambda uow: paging.fill(
                uow.list_groups(after, size + 1), size, convert.location_group, lambda x: x.id
            ),
            big=size > paging.BIG_PAGE,
        )
        return inv.ListLocationGroupsResponse(location_groups=page, next_page_token=token)

    @rpc
    async def SetStock(
        self, request: inv.SetStockRequest, context: Context
    ) -> inv.SetStockResponse:
        levels = validate.stock_levels(request)
        return await self.tx.mutate(
            request,
            {level.sku for level in levels},
            lambda uow: inv.SetStockResponse(
                results=[convert.stock_update(x) for x in self.ledger.set_stock(uow, levels)]
            ),
            big=len(levels) > BIG_BATCH,
        )

    @rpc
    async def AdjustStock(
        self, request: inv.AdjustStockRequest, context: Context
    ) -> inv.AdjustStockResponse:
        adjustments = validate.stock_adjustments(request)
        return await self.tx.mutate(
            request,
            {item.sku for item in adjustments},
            lambda uow: inv.AdjustStockResponse(
                results=[convert.adjustment(x) for x in self.ledger.adjust_stock(uow, adjustments)]
            ),
            big=len(adjustments) > BIG_BATCH,
        )

    @rpc
    async def GetAvailability(
        self, request: inv.GetAvailabilityRequest, context: Context
    ) -> inv.GetAvailabilityResponse:
        skus, places = validate.availability(request)
        # The answer is built inside the unit of work, so a big one is built off the loop too.
        return await self.tx.query(
            lambda uow: convert.availability_response(self.ledger.availability(uow, skus, places)),
            big=len(skus) * len(places) > BIG_ANSWER,
        )

    @rpc
    async def ListStockMovements(
        self, request: inv.ListStockMovementsRequest, context: Context
    ) -> inv.ListStockMovementsResponse:
        query = validate.movement_query(request)
        page, token = await self.tx.query(
            lambda uow: paging.fill(
                uow.movements_after(
                    query.after_seq,
                    query.size + 1,
                    sku=query.sku,
                    place=query.place,
                    start_us=query.start_us,
                    end_us=query.end_us,
                ),
                query.size,
                convert.stock_movement,
                lambda x: str(x.seq),
            ),
            big=query.size > paging.BIG_PAGE,
        )
        return inv.ListStockMovementsResponse(movements=page, next_page_token=token)

    @rpc
    async def DeleteLocations(
        self, request: inv.DeleteLocationsRequest, context: Context
    ) -> inv.DeleteLocationsResponse:
        ids = validate.deleted_locations(request)
        return await self.tx.mutate(
            request,
            (),
            lambda uow: inv.DeleteLocationsResponse(
                deleted_stock_records=self.ledger.delete_locations(uow, ids)
            ),
            network=True,
        )

    @rpc
    async def DeleteLocationGroups(
        self, request: inv.DeleteLocationGroupsRequest, context: Context
    ) -> inv.DeleteLocationGroupsResponse:
        ids = validate.deleted_groups(request)

        def run(uow: UnitOfWork) -> inv.DeleteLocationGroupsResponse:
            self.ledger.delete_groups(uow, ids)
            return inv.DeleteLocationGroupsResponse()

        return await self.tx.mutate(request, (), run, network=True)

    @rpc
    async def DeleteStock(
        self, request: inv.DeleteStockRequest, context: Context
    ) -> inv.DeleteStockResponse:
        keys = validate.deleted_stock(request)

        def run(uow: UnitOfWork) -> inv.DeleteStockResponse:
            self.ledger.delete_stock(uow, keys)
            return inv.DeleteStockResponse()

        return await self.tx.mutate(
            request, {sku for sku, _ in keys}, run, big=len(keys) > BIG_BATCH
        )

    @rpc
    async def FindNearbyAvailability(
        self, request: inv.FindNearbyAvailabilityRequest, context: Context
    ) -> inv.FindNearbyAvailabilityResponse:
        query = validate.nearby_query(request)
        return await self.tx.query(
            lambda uow: convert.nearby_response(query, find_nearby(uow, self.ledger, query)),
            big=len(query.basket) * query.max_locations > BIG_ANSWER,
        )
