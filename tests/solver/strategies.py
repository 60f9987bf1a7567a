"""Hypothesis strategies for small routing problems (small enough for the brute-force oracle).

Hypothesis draws the shape and the options, so shrinking reduces lines, locations and options;
the bulk data (stock, positions, costs) comes from a seeded generator, which keeps thousands of
examples cheap to draw.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from solver import Line, Location, Objective, Options, Problem

_COSTS = np.array([0.0, 1.5, 5.0, 10.0])
_SCATTERED_UNITS = np.array([0, 0, 0, 0, 1, 2, 3, 5])
_COST_PER_KM = st.sampled_from([0.0, 0.01, 0.5])
_MAX_SHIPMENTS = st.one_of(st.none(), st.integers(1, 3))


@st.composite
def problems(
    draw: st.DrawFn,
    *,
    max_lines: int = 3,
    max_locations: int = 6,
    max_quantity: int = 4,
    objectives: tuple[Objective, ...] = (Objective.LEXICOGRAPHIC, Objective.COST),
    options: bool = True,
    scattered: bool = False,
) -> Problem:
    """A random order: sparse stock, grid positions, and (if `options`) random options.

    Positions are on a half-degree grid, so distinct locations often share a distance to the
    destination and ties (and the tie-break) are exercised, not just the generic case.
    """
    n = draw(st.integers(1, max_lines))
    m = draw(st.integers(0, max_locations))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    quantities = rng.integers(1, max_quantity + 1, n)
    names = [f"L{j}" for j in rng.permutation(m)]
    grid = rng.integers(0, [13, 17], size=(m + 1, 2))
    positions = [(30.0 + 0.5 * a, -100.0 + 0.5 * b) for a, b in grid.tolist()]
    if scattered:
        atf = rng.choice(_SCATTERED_UNITS, size=(n, m))
    else:
        atf = rng.integers(0, 6, size=(n, m)) * (rng.random((n, m)) < 0.6)
    lines = tuple(Line(f"sku-{i}", int(q)) for i, q in enumerate(quantities))
    locations = tuple(
        Location(
            names[j],
            *positions[j],
            shipment_cost=float(rng.choice(_COSTS)),
            priority=int(rng.integers(0, 3)),
        )
        for j in range(m)
    )
    if not options:
        return Problem(lines, locations, atf, positions[m])
    chosen = Options(
        objective=draw(st.sampled_from(objectives)),
        cost_per_km=draw(_COST_PER_KM),
        max_shipments=draw(_MAX_SHIPMENTS),
        allow_partial=draw(st.booleans()),
        keep_lines_whole=draw(st.booleans()),
        excluded_locations=frozenset(draw(st.sets(st.sampled_from(names), max_size=2)))
        if m
        else frozenset(),
        alternatives=draw(st.integers(1, 4)),
    )
    return Problem(lines, locations, atf, positions[m], chosen)
