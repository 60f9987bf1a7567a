"""InventoryService: the network, stock levels and availability."""

from __future__ import annotations

from typing import Any

import grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc

from server.domain.ledger import Ledger
from server.storage.contract import Store
from server.transport import convert, paging, validate
from server.transport.status import rpc
from server.transport.transactions import mutate, query


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, store: Store, ledger: Ledger) -> None:
        self.store = store
        self.ledger = ledger

    @rpc
    def UpsertLocations(self, request: Any, context: grpc.ServicerContext) -> Any:
        locations = validate.locations(request)
        return mutate(
            self.store,
            self.ledger.clock,
            "UpsertLocations",
            request,
            inv.UpsertLocationsResponse,
            (),
            lambda uow: inv.UpsertLocationsResponse(
                locations=[
                    convert.location(x) for x in self.ledger.upsert_locations(uow, locations)
                ]
            ),
            network=True,
        )

    @rpc
    def ListLocations(self, request: Any, context: grpc.ServicerContext) -> Any:
        size, after = validate.page(request)
        found = query(self.store, lambda uow: uow.list_locations(after, size + 1))
        page, token = paging.fill(found, size, convert.location, lambda x: x.id)
        return inv.ListLocationsResponse(locations=page, next_page_token=token)

    @rpc
    def UpsertLocationGroups(self, request: Any, context: grpc.ServicerContext) -> Any:
        groups = validate.location_groups(request)
        return mutate(
            self.store,
            self.ledger.clock,
            "UpsertLocationGroups",
            request,
            inv.UpsertLocationGroupsResponse,
            (),
            lambda uow: inv.UpsertLocationGroupsResponse(
                location_groups=[
                    convert.location_group(x) for x in self.ledger.upsert_groups(uow, groups)
                ]
            ),
            network=True,
        )

    @rpc
    def ListLocationGroups(self, request: Any, context: grpc.ServicerContext) -> Any:
        size, after = validate.page(request)
        found = query(self.store, lambda uow: uow.list_groups(after, size + 1))
        page, token = paging.fill(found, size, convert.location_group, lambda x: x.id)
        return inv.ListLocationGroupsResponse(location_groups=page, next_page_token=token)

    @rpc
    def SetStock(self, request: Any, context: grpc.ServicerContext) -> Any:
        levels = validate.stock_levels(request)
        return mutate(
            self.store,
            self.ledger.clock,
            "SetStock",
            request,
            inv.SetStockResponse,
            {level.sku for level in levels},
            lambda uow: inv.SetStockResponse(
                results=[convert.stock_update(x) for x in self.ledger.set_stock(uow, levels)]
            ),
        )

    @rpc
    def AdjustStock(self, request: Any, context: grpc.ServicerContext) -> Any:
        adjustments = validate.stock_adjustments(request)
        return mutate(
            self.store,
            self.ledger.clock,
            "AdjustStock",
            request,
            inv.AdjustStockResponse,
            {item.sku for item in adjustments},
            lambda uow: inv.AdjustStockResponse(
                results=[convert.adjustment(x) for x in self.ledger.adjust_stock(uow, adjustments)]
            ),
        )

    @rpc
    def GetAvailability(self, request: Any, context: grpc.ServicerContext) -> Any:
        skus, places = validate.availability(request)
        records = query(self.store, lambda uow: self.ledger.availability(uow, skus, places))
        return inv.GetAvailabilityResponse(records=[convert.availability(x) for x in records])
