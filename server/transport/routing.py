"""RoutingService: RouteOrder's request and answer; the use case is the domain's
(`server/domain/route_order.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc

from server.domain import route_order, routing
from server.domain.ledger import Ledger
from server.domain.port import UnitOfWork
from server.transport import convert, tracing
from server.transport.status import Context, rpc
from server.transport.transactions import Transactions
from server.transport.validate import routing as validate


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(
        self, transactions: Transactions, ledger: Ledger, solves: route_order.SolvePool
    ) -> None:
        self.tx = transactions
        self.ledger = ledger
        self.solves = solves

    @rpc
    async def RouteOrder(
        self, request: rt.RouteOrderRequest, context: Context
    ) -> rt.RouteOrderResponse:
        order = validate.route_order(request)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        steps = _Steps(self.tx, request, order)
        return await route_order.route_order(order, self.ledger, self.solves, deadline, steps)


class _Steps:
    """RouteOrder's units of work run through `Transactions`: every one on a worker thread,
    since a snapshot over thousands of candidates is too long to hold the event loop."""

    def __init__(self, tx: Transactions, request: rt.RouteOrderRequest, order: routing.Order):
        self.tx = tx
        self.request = request
        self.order = order

    async def replay(self) -> rt.RouteOrderResponse | None:
        replayed = await self.tx.replay(self.request)
        assert replayed is None or isinstance(replayed, rt.RouteOrderResponse)
        return replayed

    async def read(self, run: Callable[[UnitOfWork], routing.Snapshot]) -> routing.Snapshot:
        return await self.tx.query(run, big=True)

    async def answer(
        self, routed: route_order.Routed, commit: route_order.Commit | None
    ) -> rt.RouteOrderResponse:
        response = convert.route_order_response(self.order, routed)
        if commit is None:
            return response

        def run(uow: UnitOfWork) -> rt.RouteOrderResponse:
            response.reservation.CopyFrom(convert.reservation(commit(uow)))
            return response

        return await self.tx.mutate(self.request, self.order.skus, run, big=True)

    def phase(self, name: str) -> AbstractContextManager[object]:
        return tracing.tracer.start_as_current_span(f"RouteOrder {name}")
