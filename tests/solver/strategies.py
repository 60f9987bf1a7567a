"""Hypothesis strategies for small routing problems (small enough for the brute-force oracle)."""

from __future__ import annotations

from hypothesis import strategies as st

from solver import Line, Location, Objective, Options, Problem

# Half-degree grid: distinct locations often share a distance to the destination, so ties on
# distance (and the tie-break) are exercised, not just the generic case.
_LATITUDES = st.integers(0, 12).map(lambda k: 30.0 + 0.5 * k)
_LONGITUDES = st.integers(0, 16).map(lambda k: -100.0 + 0.5 * k)


@st.composite
def problems(  # noqa: PLR0913 - knobs for the tests that need narrower instances
    draw: st.DrawFn,
    *,
    max_lines: int = 3,
    max_locations: int = 6,
    max_quantity: int = 4,
    objectives: tuple[Objective, ...] = (Objective.LEXICOGRAPHIC, Objective.COST),
    options: bool = True,
    scattered: bool = False,
) -> Problem:
    """A random order: sparse stock, grid positions, and (if `options`) random options."""
    n = draw(st.integers(1, max_lines))
    m = draw(st.integers(0, max_locations))
    lines = tuple(Line(f"sku-{i}", draw(st.integers(1, max_quantity))) for i in range(n))
    names = draw(st.permutations([f"L{j}" for j in range(m)]))
    locations = tuple(
        Location(
            id=names[j],
            latitude=draw(_LATITUDES),
            longitude=draw(_LONGITUDES),
            shipment_cost=draw(st.sampled_from([0.0, 1.5, 5.0, 10.0])),
            priority=draw(st.integers(0, 2)),
        )
        for j in range(m)
    )
    units = st.sampled_from([0, 0, 0, 0, 1, 2, 3, 5]) if scattered else st.integers(0, 5)
    atf = [[draw(units) for _ in range(m)] for _ in range(n)]
    destination = (draw(_LATITUDES), draw(_LONGITUDES))
    if not options:
        return Problem(lines, locations, atf, destination)  # type: ignore[arg-type]
    chosen = Options(
        objective=draw(st.sampled_from(objectives)),
        cost_per_km=draw(st.sampled_from([0.0, 0.01, 0.5])),
        max_shipments=draw(st.one_of(st.none(), st.integers(1, 3))),
        allow_partial=draw(st.booleans()),
        keep_lines_whole=draw(st.booleans()),
        excluded_locations=frozenset(draw(st.sets(st.sampled_from(names), max_size=2)))
        if m
        else frozenset(),
        alternatives=draw(st.integers(1, 4)),
    )
    return Problem(lines, locations, atf, destination, chosen)  # type: ignore[arg-type]
