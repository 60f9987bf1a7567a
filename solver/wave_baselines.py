"""Routing a wave the way every peer does: order by order, in the given order, each order taking
stock and capacity from what the earlier ones left. They return `WavePlan`s (with the trivial
bound: they prove nothing), so `evaluate` scores them and callers see what the joint solve saves.

- `one_by_one`: today's exact single-order solver per order (`solver.solve`). The single-order
  model knows no per-location unit limit, so where its plan would exceed a location's units
  left, that order alone is solved exactly by the wave model instead.
- `greedy_one_by_one`: each order filled line by line from its nearest location outwards
  (`solver.baselines.greedy`, with capacity); an order it cannot route whole (or within its
  max shipments) is refused, unless it allows partial routing.
"""

from __future__ import annotations

import time

import numpy as np

from solver import geo
from solver.problem import IntArray
from solver.scoring import Score
from solver.wave_model import Allocation
from solver.wave_plan import WavePlan, assemble
from solver.wave_problem import WaveProblem
from solver.wave_turns import consume, route_in_turn

_NO_BOUND = Score(0, 0, 0, 0)


def one_by_one(problem: WaveProblem, time_limit_per_order: float = 10.0) -> WavePlan:
    """Each order in turn, exactly, over what the earlier orders left."""
    started = time.perf_counter()
    stock = problem.stock.copy()
    orders_left, units_left = problem.order_capacity(), problem.unit_capacity()
    routed = route_in_turn(
        problem, range(len(problem.orders)), stock, orders_left, units_left, time_limit_per_order
    )
    allocations = [routed[k] for k in range(len(problem.orders))]
    return assemble(problem, allocations, _NO_BOUND, False, "one-by-one", started)


def greedy_one_by_one(problem: WaveProblem) -> WavePlan:
    """Each order in turn, filled line by line from the nearest location outwards (ties:
    priority, then location id), skipping locations with no capacity left."""
    started = time.perf_counter()
    stock = problem.stock.copy()
    orders_left, units_left = problem.order_capacity(), problem.unit_capacity()
    allocations: list[Allocation | None] = []
    for k in range(len(problem.orders)):
        allocation = _greedy_order(problem, k, stock, orders_left, units_left)
        consume(problem, allocation, stock, orders_left, units_left)
        allocations.append(allocation)
    return assemble(problem, allocations, _NO_BOUND, False, "greedy-one-by-one", started)


def _greedy_order(
    problem: WaveProblem, k: int, stock: IntArray, orders_left: IntArray, units_left: IntArray
) -> Allocation | None:
    order = problem.orders[k]
    allowed = problem.allowed(k)
    allowed = allowed[orders_left[allowed] > 0]
    located = problem.locations
    km = geo.distances_km(located.latitude[allowed], located.longitude[allowed], *order.destination)
    ids = np.array([located[j].id for j in allowed], dtype=str)
    priority = np.array([located[j].priority for j in allowed], dtype=np.int64)
    nearest = allowed[np.lexsort((ids, priority, km))]
    units = units_left.copy()
    allocation: Allocation = {}
    short = False
    for line in order.lines:
        s = problem.sku_index[line.sku]
        remaining = line.quantity
        for j in nearest.tolist():
            available = int(min(stock[s, j], units[j]))
            take = (
                (remaining if available >= remaining else 0)
                if order.keep_lines_whole
                else min(remaining, available)
            )
            if take:
                allocation.setdefault(j, {})[line.sku] = take
                units[j] -= take
                remaining -= take
            if not remaining:
                break
        short = short or remaining > 0
    too_many = order.max_shipments is not None and len(allocation) > order.max_shipments
    if too_many or (short and not order.allow_partial):
        return None if not order.allow_partial else {}
    return allocation
