"""Brute-force oracle for small waves: every allocation of every order, scored from first
principles.

For each order it lists every way to ship it (units of each line from each allowed location,
within the stock, leaving units unrouted only with allow_partial; refusing it when it does not
allow partial routing), then tries every combination depth first over what the earlier orders
left of the stock and capacity, and keeps the lexicographically smallest total score. It shares
no code with the solver beyond the problem's data and `geo` distances.
"""

from __future__ import annotations

import itertools

from solver import Objective, Score, geo
from solver.wave_problem import WaveProblem

Way = tuple[dict[tuple[int, int], int], Score]
"""((line, location) -> units, score): one way to route one order."""


def _units(problem: WaveProblem, k: int, j: int) -> tuple[int, int]:
    """(whole metres, milli-cost) of a shipment from location j to order k."""
    order = problem.orders[k]
    place = problem.locations[j]
    km = geo.distance_km(place.latitude, place.longitude, *order.destination)
    cost = 0
    if problem.objective is Objective.COST:
        cost = round((place.shipment_cost + problem.cost_per_km * km) * 1000)
    return round(km * 1000), cost


def ways(problem: WaveProblem, k: int) -> list[Way]:
    """Every way to route order k with the whole stock to itself (no capacity yet)."""
    order = problem.orders[k]
    allowed = [
        j
        for j, x in enumerate(problem.locations)
        if (order.candidates is None or x.id in order.candidates)
        and x.id not in order.excluded_locations
    ]
    per_line = []
    for line in order.lines:
        s = problem.sku_index[line.sku]
        ranges = [range(min(line.quantity, int(problem.stock[s, j])) + 1) for j in allowed]
        options = []
        for units in itertools.product(*ranges):
            shipped = sum(units)
            if shipped > line.quantity:
                continue
            if order.keep_lines_whole and sum(u > 0 for u in units) > 1:
                continue
            if shipped < line.quantity and not order.allow_partial:
                continue
            options.append(units)
        per_line.append(options)
    found: list[Way] = []
    total_units = sum(x.quantity for x in order.lines)
    if not order.allow_partial:
        found.append(({}, Score(total_units, 0, 0, 0)))  # refused
    for choice in itertools.product(*per_line):
        taken = {
            (i, j): u
            for i, units in enumerate(choice)
            for j, u in zip(allowed, units, strict=True)
            if u
        }
        used = sorted({j for _, j in taken})
        if order.max_shipments is not None and len(used) > order.max_shipments:
            continue
        metres_cost = [_units(problem, k, j) for j in used]
        unrouted = total_units - sum(taken.values())
        score = Score(
            unrouted,
            sum(c for _, c in metres_cost),
            len(used),
            sum(m for m, _ in metres_cost),
        )
        found.append((taken, score))
    return found


def best(problem: WaveProblem) -> Score:
    """The wave's optimum: the smallest total score over all jointly feasible combinations."""
    all_ways = [sorted(ways(problem, k), key=lambda w: w[1]) for k in range(len(problem.orders))]
    stock = problem.stock.copy()
    orders_left = problem.order_capacity()
    units_left = problem.unit_capacity()
    best_found: list[Score | None] = [None]

    def add(a: Score, b: Score) -> Score:
        return Score(*(x + y for x, y in zip(a, b, strict=True)))

    def search(k: int, so_far: Score) -> None:
        if best_found[0] is not None and so_far >= best_found[0]:
            return  # adding scores (all levels >= 0) never makes a total smaller
        if k == len(all_ways):
            best_found[0] = so_far
            return
        order = problem.orders[k]
        for taken, score in all_ways[k]:
            by_location: dict[int, int] = {}
            fits = True
            for (i, j), u in taken.items():
                s = problem.sku_index[order.lines[i].sku]
                by_location[j] = by_location.get(j, 0) + u
                fits = fits and u <= stock[s, j]
            fits = fits and all(
                orders_left[j] >= 1 and units_left[j] >= u for j, u in by_location.items()
            )
            if not fits:
                continue
            for (i, j), u in taken.items():
                stock[problem.sku_index[order.lines[i].sku], j] -= u
            for j, u in by_location.items():
                orders_left[j] -= 1
                units_left[j] -= u
            search(k + 1, add(so_far, score))
            for (i, j), u in taken.items():
                stock[problem.sku_index[order.lines[i].sku], j] += u
            for j, u in by_location.items():
                orders_left[j] += 1
                units_left[j] += u

    search(0, Score(0, 0, 0, 0))
    assert best_found[0] is not None  # refusing or routing nothing always fits
    return best_found[0]
