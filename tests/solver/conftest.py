"""Small named routing instances (PyVRP-style fixtures), laid out along the equator.

The destination is (0, 0) and a location at longitude x degrees is x * 111.195 km away, so the
hand-worked optima in the tests read in degrees: `metres(3)` is the distance of 3 degrees.
"""

from __future__ import annotations

from typing import Any

import pytest

from solver import Location, Problem, geo


def metres(degrees: float) -> int:
    """Whole metres from the destination to a location `degrees` east along the equator."""
    return round(geo.distance_km(0.0, 0.0, 0.0, degrees) * 1000)


def at(location_id: str, degrees: float, **fields: Any) -> Location:
    """A location `degrees` east of the destination on the equator."""
    return Location(location_id, 0.0, degrees, **fields)


def order(
    lines: dict[str, int], stock: dict[str, tuple[float, dict[str, int]]], **options: Any
) -> Problem:
    """A problem from {sku: quantity} and {location id: (degrees, {sku: ATF})}."""
    extra = {k: options.pop(k) for k in ("shipment_costs", "priorities") if k in options}
    costs = extra.get("shipment_costs", {})
    priorities = extra.get("priorities", {})
    return Problem.build(
        lines=list(lines.items()),
        locations=[
            at(name, degrees, shipment_cost=costs.get(name, 0.0), priority=priorities.get(name, 0))
            for name, (degrees, _) in stock.items()
        ],
        atf={
            (sku, name): units for name, (_, held) in stock.items() for sku, units in held.items()
        },
        destination=(0.0, 0.0),
        **options,
    )


@pytest.fixture
def one_far_or_two_near() -> dict[str, Any]:
    """A:2, B:1. N1 (1 deg) holds A:2, N2 (2 deg) holds B:1, F (10 deg) holds both, N3 (4 deg)
    holds A:2. Fewest shipments: F alone; the next sets are {N1, N2} (3 deg), {N2, N3} (6 deg)."""
    return {
        "lines": {"A": 2, "B": 1},
        "stock": {
            "N1": (1.0, {"A": 2}),
            "N2": (2.0, {"B": 1}),
            "F": (10.0, {"A": 2, "B": 1}),
            "N3": (4.0, {"A": 2}),
        },
    }


@pytest.fixture
def split_or_whole() -> dict[str, Any]:
    """A:2, B:1. L1 (1 deg) A:1 B:1, L2 (2 deg) A:1, L3 (5 deg) A:2: no single location ships it;
    split lines: {L1, L2} (3 deg); whole lines: A needs L3, B needs L1: {L1, L3} (6 deg)."""
    return {
        "lines": {"A": 2, "B": 1},
        "stock": {"L1": (1.0, {"A": 1, "B": 1}), "L2": (2.0, {"A": 1}), "L3": (5.0, {"A": 2})},
    }
