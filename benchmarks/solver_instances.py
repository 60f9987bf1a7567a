"""Seeded routing instances on real US geography for the solver benchmark.

Locations and the customer sit at real ZIP centroids from the bundled `zipcodes` table. Stock is
sparse: each location stocks each SKU of the order with probability `p`, uniform 0..`max_units`
units; demand is 1-4 units per line, clipped to what the candidates hold in total so every order
can be routed in full.

Densities:
  scarce     p = 0.3, 0-5 units   (an order of 10 lines over 1,000 candidates needs 2-3 locations)
  plentiful  p = 0.6, 0-10 units  (one location can often ship a small order)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import support  # noqa: F401  (first: this checkout's solver, not the venv's)
import zipcodes

from solver import Line, Location, Options, Problem

DENSITIES: dict[str, tuple[float, int]] = {"scarce": (0.3, 5), "plentiful": (0.6, 10)}


@functools.cache
def us_zip_centroids() -> tuple[tuple[str, ...], np.ndarray]:
    """Every US ZIP with a centroid: (zip codes, array of (lat, lon)), in table order."""
    codes: list[str] = []
    points: list[tuple[float, float]] = []
    for row in zipcodes.list_all():
        try:
            lat, lon = float(row["lat"]), float(row["long"])
        except (KeyError, TypeError, ValueError):
            continue
        if lat == 0.0 and lon == 0.0:
            continue
        codes.append(row["zip_code"])
        points.append((lat, lon))
    return tuple(codes), np.asarray(points, dtype=np.float64)


@dataclass(frozen=True)
class Instance:
    """One benchmark order with its candidates, and the cell it belongs to."""

    lines: int
    candidates: int
    density: str
    seed: int
    problem: Problem


def make_instance(
    lines: int, candidates: int, density: str, seed: int, **options: object
) -> Instance:
    """A seeded instance: `lines` order lines, `candidates` locations at distinct ZIPs."""
    probability, max_units = DENSITIES[density]
    rng = np.random.default_rng([lines, candidates, len(density), seed])
    codes, points = us_zip_centroids()
    picked = rng.choice(len(codes), size=candidates + 1, replace=False)
    destination = points[picked[0]]
    location_rows = picked[1:]
    stocked = rng.random((lines, candidates)) < probability
    units = rng.integers(0, max_units + 1, size=(lines, candidates))
    atf = np.where(stocked, units, 0).astype(np.int64)
    for i in range(lines):  # every line must be routable in full
        if atf[i].sum() == 0:
            atf[i, rng.integers(candidates)] = rng.integers(1, max_units + 1)
    demand = np.minimum(rng.integers(1, 5, size=lines), atf.sum(axis=1))
    locations = tuple(
        Location(
            id=f"loc-{codes[row]}",
            latitude=float(points[row, 0]),
            longitude=float(points[row, 1]),
            shipment_cost=float(rng.integers(500, 1500)) / 100.0,
            priority=int(rng.integers(0, 10)),
        )
        for row in location_rows
    )
    problem = Problem(
        lines=tuple(Line(f"sku-{i:03d}", int(demand[i])) for i in range(lines)),
        locations=locations,
        atf=atf,
        destination=(float(destination[0]), float(destination[1])),
        options=Options(**options),  # type: ignore[arg-type]
    )
    return Instance(lines, candidates, density, seed, problem)
