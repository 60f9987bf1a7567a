"""Seeded waves on real US geography for the wave benchmark.

Locations and customers sit at distinct real ZIP centroids (the `zipcodes` table, as in
solver_instances). A catalogue of 200 SKUs with Zipf popularity (weight 1/rank); each order has
1-4 lines (mean 2.2) of distinct SKUs drawn by popularity, 1 unit (70%) or 2 per line. Every
order allows partial routing, so what cannot be routed is counted, not refused.

Stock is set against the wave's demand of each SKU, so "scarce" means the same at every size:
  scarce     the network holds 1.5x the wave's demand of each SKU (at least 2 units), in lots
             of 1-2 units at random locations
  plentiful  5x (at least 5 units), in lots of 1-6 units
Capacity (the "cap" cells): each location can pick a random 1..2m orders and three times as
many units, with m = 1.5 x (orders x 1.6 expected boxes) / locations, at least 1.
"""

from __future__ import annotations

import math

import numpy as np
import support  # noqa: F401  (first: this checkout's solver, not the venv's)
from solver_instances import us_zip_centroids

from solver import Line, Location
from solver.wave_problem import Capacity, WaveOrder, WaveProblem

CATALOGUE = 200
DENSITIES: dict[str, tuple[float, int, int]] = {"scarce": (1.5, 2, 2), "plentiful": (5.0, 5, 6)}
"""density -> (stock per unit of demand, minimum units per SKU, largest lot)."""
LINES = np.array([1, 1, 2, 2, 3, 4])


def make_wave(orders: int, locations: int, density: str, capacity: bool, seed: int) -> WaveProblem:
    """A seeded wave of `orders` orders over `locations` locations."""
    ratio, minimum, lot = DENSITIES[density]
    rng = np.random.default_rng([orders, locations, len(density), int(capacity), seed])
    codes, points = us_zip_centroids()
    picked = rng.choice(len(codes), size=locations + orders, replace=False)
    places = [
        Location(
            id=f"loc-{codes[row]}",
            latitude=float(points[row, 0]),
            longitude=float(points[row, 1]),
            shipment_cost=float(rng.integers(500, 1500)) / 100.0,
            priority=int(rng.integers(0, 10)),
        )
        for row in picked[:locations]
    ]
    popularity = 1.0 / np.arange(1, CATALOGUE + 1)
    popularity /= popularity.sum()
    wave_orders = []
    demand = np.zeros(CATALOGUE, dtype=np.int64)
    for k, row in enumerate(picked[locations:]):
        skus = rng.choice(CATALOGUE, size=int(rng.choice(LINES)), replace=False, p=popularity)
        quantities = rng.choice([1, 2], size=len(skus), p=[0.7, 0.3])
        demand[skus] += quantities
        wave_orders.append(
            WaveOrder(
                id=f"order-{k:04d}",
                lines=tuple(
                    Line(f"sku-{s:03d}", int(q)) for s, q in zip(skus, quantities, strict=True)
                ),
                destination=(float(points[row, 0]), float(points[row, 1])),
                allow_partial=True,
            )
        )
    stock: dict[tuple[str, str], int] = {}
    for s in np.flatnonzero(demand):
        left = max(minimum, math.ceil(ratio * demand[s]))
        while left:
            units = min(left, int(rng.integers(1, lot + 1)))
            key = (f"sku-{s:03d}", places[int(rng.integers(locations))].id)
            stock[key] = stock.get(key, 0) + units
            left -= units
    capacities = {}
    if capacity:
        mean = max(1, round(1.5 * orders * 1.6 / locations))
        for place in places:
            limit = int(rng.integers(1, 2 * mean + 1))
            capacities[place.id] = Capacity(orders=limit, units=3 * limit)
    return WaveProblem.build(orders=wave_orders, locations=places, stock=stock, capacity=capacities)
