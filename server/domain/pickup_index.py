"""The pickup-enabled locations as a spatial index: points on the unit sphere in a k-d tree
(scipy's cKDTree), so that the nearest of thousands are found without measuring the distance to
each. Straight-line (chord) distance between unit vectors grows with the great-circle distance,
so the tree's nearest are the sphere's nearest; distances reported are the router's haversine
kilometres (solver.geo), measured for the few locations found."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from server.domain.model import Location
from solver.geo import EARTH_RADIUS_KM, distances_km

MAX_RADIUS_KM = 20_000.0
"""Just under half the Earth's circumference (20,015 km): every radius accepted is a chord
shorter than the sphere's diameter."""
_RELATIVE_SLACK = 1e-9
_ABSOLUTE_SLACK = 1e-12
"""How much farther than a bound (in chord length, unit sphere) the tree is asked to look: the
chord and the haversine of two points agree on their order only up to rounding, and what is
found is measured again by haversine and cut exactly."""


class Nearby(NamedTuple):
    location_id: str
    distance_km: float


def unit_vectors(latitudes: npt.ArrayLike, longitudes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """(x, y, z) on the unit sphere of each (latitude, longitude) in degrees, one row each."""
    lat = np.radians(np.asarray(latitudes, dtype=np.float64))
    lon = np.radians(np.asarray(longitudes, dtype=np.float64))
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def chord(distance_km: float) -> float:
    """The straight-line distance through the unit sphere between two points `distance_km`
    apart along its surface (scaled to the Earth)."""
    return 2.0 * math.sin(min(distance_km / EARTH_RADIUS_KM, math.pi) / 2.0)


class PickupIndex:
    """Locations by position, in id order (so equal distances are ordered by id). Immutable:
    one instance serves every unit of work at its network version."""

    __slots__ = ("_latitudes", "_longitudes", "_tree", "location_ids")

    def __init__(self, locations: Iterable[Location]) -> None:
        found = sorted(locations, key=lambda location: location.id)
        self.location_ids = tuple(location.id for location in found)
        self._latitudes = np.array([location.latitude for location in found], dtype=np.float64)
        self._longitudes = np.array([location.longitude for location in found], dtype=np.float64)
        self._tree = cKDTree(unit_vectors(self._latitudes, self._longitudes)) if found else None

    def __len__(self) -> int:
        return len(self.location_ids)

    def nearest(
        self, latitude: float, longitude: float, limit: int, radius_km: float | None = None
    ) -> list[Nearby]:
        """The `limit` locations nearest the point (within `radius_km` inclusive, if given),
        nearest first, equal distances in id order."""
        tree = self._tree
        if tree is None or limit < 1:
            return []
        origin = unit_vectors([latitude], [longitude])[0]
        bound = np.inf if radius_km is None else _slack(chord(radius_km))
        k = min(limit, len(self))
        found, columns = tree.query(origin, k=k, distance_upper_bound=bound)
        found, columns = np.atleast_1d(found), np.atleast_1d(columns)
        columns = columns[np.isfinite(found)]
        if len(columns) == k:
            # The limit cut: any location as near as the last one found (as rounding has it)
            # ties with it and may come first by id.
            farthest = float(np.max(found))
            columns = np.union1d(columns, tree.query_ball_point(origin, _slack(farthest)))
        distances = distances_km(
            self._latitudes[columns], self._longitudes[columns], latitude, longitude
        )
        if radius_km is not None:
            kept = distances <= radius_km
            columns, distances = columns[kept], distances[kept]
        order = np.lexsort((columns, distances))[:limit]  # columns are in id order
        return [Nearby(self.location_ids[columns[j]], float(distances[j])) for j in order.tolist()]


def _slack(bound: float) -> float:
    return bound * (1.0 + _RELATIVE_SLACK) + _ABSOLUTE_SLACK
