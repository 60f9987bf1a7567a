"""RoutingService: read live ATF, solve, and commit the plan to the ledger optimistically.

Each attempt's snapshot and commit are ledger transactions and run on the event loop's worker
threads, where every PostgreSQL unit of work runs; only the solve runs on the `SolvePool`, so long
solves never hold back reservations, and a full solve pool refuses routing alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from google.protobuf import duration_pb2
from omniroute.routing.v1 import routing_pb2 as rt
from omniroute.routing.v1 import routing_pb2_grpc

import solver
from server.domain import routing
from server.domain.errors import (
    Conflict,
    DeadlineExceeded,
    DomainError,
    ErrorKind,
    FailedPrecondition,
)
from server.domain.ledger import Ledger
from server.domain.port import UnitOfWork
from server.transport import convert, validate
from server.transport.status import Context, rpc
from server.transport.transactions import Transactions, fingerprint, mutate, query

Result = TypeVar("Result")
ATTEMPTS = 5
DEADLINE_MARGIN_S = 0.25
"""Kept from the caller's deadline beyond the solve's own limit: for building the problem, the
solver running past its limit (it checks the clock between steps), the commit and the reply."""
SHORTEST_ATTEMPT_S = 0.1
"""With less of the deadline left than this, not even the greedy plan could be committed and
answered in time: RouteOrder refuses with DEADLINE_EXCEEDED while the caller still listens."""
QUICKEST_SOLVE_S = 0.001
"""The solve's limit when the margin takes all the time left: the solver's fast paths and the
greedy plan, which it always has."""


class RoutingBusy(DomainError):
    """Every solve thread is busy and the solve queue is full; retrying later is safe."""

    kind = ErrorKind.RESOURCE


class SolvePool:
    """RouteOrder's solves, on threads of their own, so ledger transactions never wait behind
    one. At most `workers` solve at once and `queue` more wait; beyond that RouteOrder is
    refused with RESOURCE_EXHAUSTED / ROUTING_BUSY (no other RPC uses this pool)."""

    def __init__(self, workers: int, queue: int) -> None:
        self.capacity = workers + queue
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="solve")
        self._pending = 0  # solves queued or running
        self._lock = threading.Lock()

    def admit(self, order_id: str) -> None:
        """Refuses an order at once when the pool is full, before any work is done for it."""
        if self._pending >= self.capacity:
            raise self._busy(order_id)

    async def run(self, order_id: str, solve: Callable[[], Result]) -> Result:
        with self._lock:
            if self._pending >= self.capacity:
                raise self._busy(order_id)
            self._pending += 1
        future = self._threads.submit(solve)
        # A solve leaves the count when it ends, not when its caller gives up: a running solve
        # cannot be stopped and holds its thread until its time limit (a queued one is dropped).
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def shutdown(self) -> None:
        """Drops queued solves and waits for running ones, which end within their limits."""
        self._threads.shutdown(wait=True, cancel_futures=True)

    def _release(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def _busy(self, order_id: str) -> RoutingBusy:
        return RoutingBusy(
            "ROUTING_BUSY",
            f"every solve slot is taken; retry order {order_id} later",
            order_id=order_id,
            capacity=self.capacity,
        )


class RoutingServicer(routing_pb2_grpc.RoutingServiceServicer):
    def __init__(self, transactions: Transactions, ledger: Ledger, solves: SolvePool) -> None:
        self.store = transactions.store
        self.ledger = ledger
        self.solves = solves

    @rpc
    async def RouteOrder(self, request: Any, context: Context) -> Any:
        order = validate.route_order(request)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        _check_time_left(order, deadline)
        committing = order.commit is not routing.CommitMode.DRY_RUN
        if committing and request.request_id:
            replay = await asyncio.to_thread(self._replay, request)
            if replay is not None:
                return replay
        self.solves.admit(order.order_id)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._attempt(order, request, deadline, attempt)
            except routing.StalePlan:
                continue
        raise Conflict(
            "CONFLICT",
            f"the stock kept changing under order {order.order_id} for {ATTEMPTS} attempts; retry",
            order_id=order.order_id,
            attempts=ATTEMPTS,
        )

    async def _attempt(
        self, order: routing.Order, request: Any, deadline: float | None, attempt: int
    ) -> rt.RouteOrderResponse:
        """Reads a snapshot, solves, and commits (raising StalePlan if the stock moved)."""
        snapshot = await asyncio.to_thread(
            query, self.store, lambda uow: routing.read_snapshot(uow, self.ledger, order)
        )
        plan, solve_time = await self.solves.run(
            order.order_id, lambda: self._solve(order, snapshot, deadline)
        )
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

        return await asyncio.to_thread(
            mutate,
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
    ) -> tuple[solver.Plan, float]:
        """The plan and the seconds it took, on a solve thread. Its limit is set here, after
        any wait for the thread, from what is left of the caller's deadline."""
        started = time.perf_counter()
        limit = order.options.time_limit
        if deadline is not None:
            _check_time_left(order, deadline)
            left = deadline - time.monotonic()
            limit = min(limit, max(left - DEADLINE_MARGIN_S, QUICKEST_SOLVE_S))
        try:
            problem = routing.problem(order, snapshot, limit)
            if problem is None:
                if order.options.allow_partial:
                    return routing.unrouted_plan(order), time.perf_counter() - started
                raise routing.no_route(order, dict(order.lines))
            plan = solver.solve(problem)
        except solver.InvalidProblem as error:  # the API refuses such data; older data remains
            raise FailedPrecondition(
                "UNROUTABLE_LOCATION",
                f"a candidate location holds data the router cannot use ({error.reason}); "
                "correct it with UpsertLocations",
                field=error.field,
                value=error.value,
            ) from error
        except solver.NoFeasiblePlan as error:
            raise routing.no_route(
                order,
                error.shortfall,
                "NO_ROUTE" if error.reason == "INSUFFICIENT_STOCK" else error.reason,
            ) from error
        return plan, time.perf_counter() - started


def _check_time_left(order: routing.Order, deadline: float | None) -> None:
    if deadline is not None and deadline - time.monotonic() < SHORTEST_ATTEMPT_S:
        raise DeadlineExceeded(
            "DEADLINE_EXCEEDED",
            f"too little of the caller's deadline is left to route order {order.order_id}",
            order_id=order.order_id,
        )
