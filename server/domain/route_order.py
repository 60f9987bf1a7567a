"""RouteOrder's use case: read the candidates' live stock, solve within the caller's deadline,
then commit the plan, or read and solve again when the stock moved before the commit.

How units of work run and how an answer is built are the caller's (`RouteSteps`): the use case
decides what happens in which order, and which failures the caller sees."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import solver
from server.domain.errors import (
    Conflict,
    DeadlineExceeded,
    DomainError,
    ErrorKind,
    FailedPrecondition,
)
from server.domain.ledger import Ledger
from server.domain.model import Location, Reservation
from server.domain.port import UnitOfWork
from server.domain.routing import (
    CommitMode,
    Order,
    Snapshot,
    StalePlan,
    no_route,
    problem,
    read_snapshot,
    reserve,
    transfer,
    unrouted_plan,
)

Answer = TypeVar("Answer")
AnswerT_co = TypeVar("AnswerT_co", covariant=True)
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


@dataclass(frozen=True)
class Routed:
    """One attempt's plan, with what the answer reports about its solve."""

    plan: solver.Plan
    candidates: tuple[Location, ...]
    solve_time_s: float
    attempt: int


Commit = Callable[[UnitOfWork], Reservation]
"""Moves the plan into the ledger, in the caller's write unit of work (raises StalePlan)."""


class RouteSteps(Protocol[AnswerT_co]):
    """What the caller supplies: how units of work run and how an answer is made."""

    async def replay(self) -> AnswerT_co | None:
        """The answer a committed request with this request_id already got, if any."""
        ...

    async def read(self, run: Callable[[UnitOfWork], Snapshot]) -> Snapshot:
        """Runs `run` on a read snapshot, off the event loop."""
        ...

    async def answer(self, routed: Routed, commit: Commit | None) -> AnswerT_co:
        """The answer for `routed`; with `commit`, made inside the write that runs it."""
        ...

    def phase(self, name: str) -> AbstractContextManager[object]:
        """Surrounds one phase of an attempt (snapshot, solve, commit), for tracing."""
        ...


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


async def route_order(
    order: Order,
    ledger: Ledger,
    solves: SolvePool,
    deadline: float | None,
    steps: RouteSteps[Answer],
) -> Answer:
    """Routes `order` (deadline: time.monotonic() by which the caller stops listening)."""
    check_time_left(order, deadline)
    if order.commit is not CommitMode.DRY_RUN:
        replayed = await steps.replay()
        if replayed is not None:
            return replayed
    solves.admit(order.order_id)
    for attempt in range(1, ATTEMPTS + 1):
        with steps.phase("snapshot"):
            snapshot = await steps.read(lambda uow: read_snapshot(uow, ledger, order))
        with steps.phase("solve"):
            plan, solve_time_s = await solves.run(
                order.order_id, partial(solve, order, snapshot, deadline)
            )
        routed = Routed(plan, snapshot.candidates, solve_time_s, attempt)
        try:
            with steps.phase("commit"):
                return await steps.answer(routed, _commit(ledger, order, plan))
        except StalePlan:
            continue
    raise Conflict(
        "CONFLICT",
        f"the stock kept changing under order {order.order_id} for {ATTEMPTS} attempts; retry",
        order_id=order.order_id,
        attempts=ATTEMPTS,
    )


def _commit(ledger: Ledger, order: Order, plan: solver.Plan) -> Commit | None:
    if order.commit is CommitMode.DRY_RUN:
        return None
    commit_plan = reserve if order.commit is CommitMode.RESERVE else transfer
    return lambda uow: commit_plan(uow, ledger, order, plan)


def solve(order: Order, snapshot: Snapshot, deadline: float | None) -> tuple[solver.Plan, float]:
    """The plan and the seconds it took, on a solve thread. Its limit is set here, after
    any wait for the thread, from what is left of the caller's deadline."""
    started = time.perf_counter()
    limit = order.options.time_limit
    if deadline is not None:
        check_time_left(order, deadline)
        left = deadline - time.monotonic()
        limit = min(limit, max(left - DEADLINE_MARGIN_S, QUICKEST_SOLVE_S))
    try:
        routing_problem = problem(order, snapshot, limit)
        if routing_problem is None:
            if order.options.allow_partial:
                return unrouted_plan(order), time.perf_counter() - started
            raise no_route(order, dict(order.lines))
        plan = solver.solve(routing_problem)
    except solver.InvalidProblem as error:  # the API refuses such data; older data remains
        raise FailedPrecondition(
            "UNROUTABLE_LOCATION",
            f"a candidate location holds data the router cannot use ({error.reason}); "
            "correct it with UpsertLocations",
            field=error.field,
            value=error.value,
        ) from error
    except solver.NoFeasiblePlan as error:
        raise no_route(
            order,
            error.shortfall,
            "NO_ROUTE" if error.reason == "INSUFFICIENT_STOCK" else error.reason,
        ) from error
    return plan, time.perf_counter() - started


def check_time_left(order: Order, deadline: float | None) -> None:
    if deadline is not None and deadline - time.monotonic() < SHORTEST_ATTEMPT_S:
        raise DeadlineExceeded(
            "DEADLINE_EXCEEDED",
            f"too little of the caller's deadline is left to route order {order.order_id}",
            order_id=order.order_id,
        )
