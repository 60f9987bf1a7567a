"""Great-circle distances and the bundled ZIP centroid table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solver import geo


def test_one_degree_along_the_equator_is_pi_r_over_180() -> None:
    assert geo.distance_km(0, 0, 0, 1) == pytest.approx(geo.EARTH_RADIUS_KM * math.pi / 180)


def test_pole_to_pole_is_half_a_great_circle() -> None:
    assert geo.distance_km(90, 0, -90, 0) == pytest.approx(geo.EARTH_RADIUS_KM * math.pi)


def test_new_york_to_los_angeles_is_about_3975_km_on_the_sphere() -> None:
    # JFK (40.6413, -73.7781) to LAX (33.9416, -118.4085): 3,983 km on the WGS84 ellipsoid,
    # about 3,975 km on the mean sphere.
    assert geo.distance_km(40.6413, -73.7781, 33.9416, -118.4085) == pytest.approx(3975, abs=5)


def test_vectorised_and_scalar_distances_agree_exactly() -> None:
    rng = np.random.default_rng(7)
    lats, lons = rng.uniform(-90, 90, 50), rng.uniform(-180, 180, 50)
    many = geo.distances_km(lats, lons, 12.5, -45.0)
    assert [
        geo.distance_km(a, b, 12.5, -45.0) for a, b in zip(lats, lons, strict=True)
    ] == many.tolist()


def test_zip_centroid_comes_from_the_bundled_table() -> None:
    assert geo.postal_code_centroid("US", "33101") == pytest.approx((25.7791, -80.1978))
    assert geo.postal_code_centroid("us", " 33101-1234 ") == pytest.approx((25.7791, -80.1978))


@pytest.mark.parametrize(
    ("country", "code"), [("US", "00000"), ("US", "3310"), ("US", "abcde"), ("CA", "33101")]
)
def test_unknown_postal_code_has_no_centroid(country: str, code: str) -> None:
    assert geo.postal_code_centroid(country, code) is None
