"""RoutingService: read live ATF, solve, and commit the plan to the ledger optimistically."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from google.protobuf import duration_pb2
from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc

import solver
from server.domain import routing
from server.domain.errors import Conflict, DeadlineExceeded
from server.domain.ledger import Ledger
from server.storage.contract import UnitOfWork
from server.transport import convert, validate
from server.transport.status import Context, rpc
from server.transport.transactions import Transactions, fingerprint, mutate, query

ATTEMPTS = 5
DEADLINE_MARGIN_S = 0.05


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(self, transactions: Transactions, ledger: Ledger) -> None:
        self.store = transactions.store
        self.ledger = ledger

    @rpc
    async def RouteOrder(self, request: Any, context: Context) -> Any:
        order = validate.route_order(request)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        # Solving can take seconds: on a worker thread, the event loop serves others meanwhile
        # (CP-SAT releases the GIL while it searches).
        return await asyncio.to_thread(self._route, order, request, deadline)

    def _route(
        self, order: routing.Order, request: Any, deadline: float | None
    ) -> rt.RouteOrderResponse:
        committing = order.commit is not routing.CommitMode.DRY_RUN
        if committing and request.request_id:
            replay = self._replay(request)
            if replay is not None:
                return replay
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._attempt(order, request, deadline, attempt)
            except routing.StalePlan:
                continue
        raise Conflict(
            "CONFLICT",
            f"the stock kept changing under order {order.order_id} for {ATTEMPTS} attempts; retry",
            order_id=order.order_id,
            attempts=ATTEMPTS,
        )

    def _attempt(
        self, order: routing.Order, request: Any, deadline: float | None, attempt: int
    ) -> rt.RouteOrderResponse:
        """Reads a snapshot, solves, and commits (raising StalePlan if the stock moved)."""
        snapshot = query(self.store, lambda uow: routing.read_snapshot(uow, self.ledger, order))
        started = time.perf_counter()
        plan = self._solve(order, snapshot, deadline)
        solve_time = time.perf_counter() - started
        costs = {location.id: location.shipment_cost for location in snapshot.candidates}
        response = rt.RouteOrderResponse(
            plan=convert.plan(plan, order, costs),
            alternatives=[convert.plan(x, order, costs) for x in plan.alternatives],
            stats=rt.SolveStats(
                candidates=len(snapshot.candidates),
                method=plan.method,
                solve_time=duration_pb2.Duration(
                    seconds=int(solve_time), nanos=int(solve_time % 1 * 1e9)
                ),
                attempts=attempt,
            ),
        )
        if order.commit is routing.CommitMode.DRY_RUN:
            return response
        commit = routing.reserve if order.commit is routing.CommitMode.RESERVE else routing.transfer

        def run(uow: UnitOfWork) -> rt.RouteOrderResponse:
            response.reservation.CopyFrom(
                convert.reservation(commit(uow, self.ledger, order, plan))
            )
            return response

        return mutate(
            self.store,
            self.ledger.clock,
            "RouteOrder",
            request,
            rt.RouteOrderResponse,
            order.skus,
            run,
        )

    def _replay(self, request: Any) -> rt.RouteOrderResponse | None:
        """A committed RouteOrder retried with its request_id answers as the first time, without
        solving again (the first commit took the stock the new solve would look for)."""
        seen = query(self.store, lambda uow: uow.remembered(request.request_id))
        if seen is None or seen.fingerprint != fingerprint(request) or seen.method != "RouteOrder":
            return None  # unknown ids run; mismatches are refused inside the commit
        return rt.RouteOrderResponse.FromString(seen.response)

    def _solve(
        self, order: routing.Order, snapshot: routing.Snapshot, deadline: float | None
    ) -> solver.Plan:
        limit = order.options.time_limit
        if deadline is not None:
            limit = min(limit, deadline - time.monotonic() - DEADLINE_MARGIN_S)
            if limit <= 0:
                raise DeadlineExceeded(
                    "DEADLINE_EXCEEDED",
                    f"no time left to solve order {order.order_id} before the caller's deadline",
                    order_id=order.order_id,
                )
        problem = routing.problem(order, snapshot, limit)
        if problem is None:
            if order.options.allow_partial:
                return routing.unrouted_plan(order)
            raise routing.no_route(order, dict(order.lines))
        try:
            return solver.solve(problem)
        except solver.NoFeasiblePlan as error:
            raise routing.no_route(
                order,
                error.shortfall,
                "NO_ROUTE" if error.reason == "INSUFFICIENT_STOCK" else error.reason,
            ) from error
