"""Routing orders in turn over what the earlier ones left: the order-by-order baseline, and
the joint solve's fallback when time runs out."""

from __future__ import annotations

import time
from collections.abc import Sequence

from solver.plan import NoFeasiblePlan, Plan
from solver.problem import IntArray
from solver.solve import solve as solve_order
from solver.wave_model import Allocation, columns, solve_columns
from solver.wave_problem import WaveProblem


def allocation_of(problem: WaveProblem, plan: Plan) -> Allocation:
    """A single-order plan's units per location position of the wave."""
    return {problem.location_index[s.location_id]: dict(s.units) for s in plan.shipments}


def route_in_turn(
    problem: WaveProblem,
    orders: Sequence[int],
    stock: IntArray,
    orders_left: IntArray,
    units_left: IntArray,
    time_limit_per_order: float,
) -> dict[int, Allocation | None]:
    """Route `orders` in turn by the single-order solver, consuming `stock` and the capacity
    left (the arrays are updated in place)."""
    found: dict[int, Allocation | None] = {}
    for k in orders:
        single = problem.order_problem(k, stock, orders_left, units_left, time_limit_per_order)
        try:
            allocation: Allocation | None = allocation_of(problem, solve_order(single))
        except NoFeasiblePlan:
            allocation = None
        if allocation and any(sum(u.values()) > units_left[j] for j, u in allocation.items()):
            left = problem.remaining(stock, orders_left, units_left)
            answer = solve_columns(
                left, columns(left, [k]), time.perf_counter() + time_limit_per_order
            )
            allocation = answer.allocations[0] if answer is not None else None
        consume(problem, allocation, stock, orders_left, units_left)
        found[k] = allocation
    return found


def left_after(
    problem: WaveProblem, allocations: Sequence[Allocation | None]
) -> tuple[IntArray, IntArray, IntArray]:
    """Stock, order capacity and unit capacity left once `allocations` are shipped."""
    stock = problem.stock.copy()
    orders_left = problem.order_capacity()
    units_left = problem.unit_capacity()
    for allocation in allocations:
        consume(problem, allocation, stock, orders_left, units_left)
    return stock, orders_left, units_left


def consume(
    problem: WaveProblem,
    allocation: Allocation | None,
    stock: IntArray,
    orders_left: IntArray,
    units_left: IntArray,
) -> None:
    """Take an order's allocation off the stock and capacity left (in place)."""
    for j, units in (allocation or {}).items():
        orders_left[j] -= 1
        for sku, n in units.items():
            stock[problem.sku_index[sku], j] -= n
            units_left[j] -= n
