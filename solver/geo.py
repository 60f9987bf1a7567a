"""Distances and positions: great-circle kilometres, and US ZIP centroids from a bundled table.

Every distance the solver uses comes from `distances_km`, so a road-distance provider can replace
haversine in one place later. `postal_code_centroid` resolves a destination offline from the
`zipcodes` package's ZIP table (loaded once, lazily, on first use).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), the usual choice for haversine distances."""

FloatArray = npt.NDArray[np.float64]


def distances_km(
    latitudes: npt.ArrayLike, longitudes: npt.ArrayLike, latitude: float, longitude: float
) -> FloatArray:
    """Great-circle (haversine) distances in km from each (latitude, longitude) to one point."""
    lat1 = np.radians(np.asarray(latitudes, dtype=np.float64))
    lon1 = np.radians(np.asarray(longitudes, dtype=np.float64))
    lat2, lon2 = math.radians(latitude), math.radians(longitude)
    half_chord = (
        np.sin((lat2 - lat1) / 2.0) ** 2
        + np.cos(lat1) * math.cos(lat2) * np.sin((lon2 - lon1) / 2.0) ** 2
    )
    angle = 2.0 * np.arcsin(np.sqrt(np.clip(half_chord, 0.0, 1.0)))
    return np.asarray(EARTH_RADIUS_KM * angle, dtype=np.float64)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in km; the same arithmetic as `distances_km`."""
    return float(distances_km([lat1], [lon1], lat2, lon2)[0])


_zip_lock = threading.Lock()
_zip_table: dict[str, tuple[float, float]] | None = None


def _us_zip_table() -> dict[str, tuple[float, float]]:
    global _zip_table  # noqa: PLW0603 - a process-wide cache, filled once under the lock
    with _zip_lock:
        if _zip_table is None:
            import zipcodes  # noqa: PLC0415 - the table is slow to load: only on demand

            table: dict[str, tuple[float, float]] = {}
            for row in zipcodes.list_all():  # type: ignore[no-untyped-call]
                try:
                    lat, lon = float(row["lat"]), float(row["long"])
                except (KeyError, TypeError, ValueError):
                    continue
                if math.isfinite(lat) and math.isfinite(lon) and (lat, lon) != (0.0, 0.0):
                    table[row["zip_code"]] = (lat, lon)
            _zip_table = table
        return _zip_table


def postal_code_centroid(country: str, postal_code: str) -> tuple[float, float] | None:
    """(latitude, longitude) of a postal code's centroid, or None when it is not known.

    Only the United States is covered ("US"/"USA", any case); ZIP+4 ("33101-1234") and
    surrounding spaces are accepted and resolved by the five-digit ZIP.
    """
    if country.strip().upper() not in {"US", "USA"}:
        return None
    code = postal_code.strip()
    if len(code) == 10 and code[5] == "-" and code[6:].isdigit():
        code = code[:5]
    if len(code) != 5 or not code.isdigit():
        return None
    return _us_zip_table().get(code)
