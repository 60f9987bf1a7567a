"""Problem validation: every malformed input fails up front with a machine-readable reason."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from solver import InvalidProblem, Line, Location, Options, Problem

LINES = (Line("A", 1),)
HERE = Location("L1", 40.0, -75.0)


def _problem(**changes: Any) -> Problem:
    fields: dict[str, Any] = {
        "lines": LINES,
        "locations": (HERE,),
        "atf": [[1]],
        "destination": (40.0, -74.0),
    }
    fields.update(changes)
    return Problem(**fields)


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"lines": ()}, "NO_LINES", "lines"),
        ({"lines": (Line("A", 0),)}, "NON_POSITIVE_QUANTITY", "lines[0].quantity"),
        ({"lines": (Line("A", -2),)}, "NON_POSITIVE_QUANTITY", "lines[0].quantity"),
        ({"lines": (Line("A", 1.5),)}, "INVALID_QUANTITY", "lines[0].quantity"),  # type: ignore[arg-type]
        ({"lines": (Line("A", 10**10),)}, "QUANTITY_TOO_LARGE", "lines[0].quantity"),
        ({"lines": (Line("", 1),)}, "EMPTY_SKU", "lines[0].sku"),
        (
            {"lines": (Line("A", 1), Line("A", 2)), "atf": [[1], [1]]},
            "DUPLICATE_SKU",
            "lines[1].sku",
        ),
        ({"locations": (HERE, HERE), "atf": [[1, 1]]}, "DUPLICATE_LOCATION_ID", "locations[1].id"),
        ({"locations": (Location("", 0, 0),)}, "EMPTY_LOCATION_ID", "locations[0].id"),
        (
            {"locations": (Location("L1", math.nan, 0),)},
            "INVALID_COORDINATES",
            "locations[0].latitude",
        ),
        ({"locations": (Location("L1", 91, 0),)}, "INVALID_COORDINATES", "locations[0].latitude"),
        ({"locations": (Location("L1", 0, -181),)}, "INVALID_COORDINATES", "locations[0].latitude"),
        ({"destination": (math.inf, 0.0)}, "INVALID_COORDINATES", "destination"),
        (
            {"locations": (Location("L1", 0, 0, shipment_cost=-1),)},
            "INVALID_SHIPMENT_COST",
            "locations[0].shipment_cost",
        ),
        (
            {"locations": (Location("L1", 0, 0, priority=0.5),)},
            "INVALID_PRIORITY",  # type: ignore[arg-type]
            "locations[0].priority",
        ),
        ({"atf": [[1, 2]]}, "ATF_SHAPE_MISMATCH", "atf"),
        ({"atf": [[-1]]}, "NEGATIVE_ATF", "atf['A', 'L1']"),
        ({"atf": [[0.5]]}, "INVALID_ATF", "atf"),
        ({"options": Options(max_shipments=0)}, "INVALID_OPTION", "options.max_shipments"),
        ({"options": Options(alternatives=0)}, "INVALID_OPTION", "options.alternatives"),
        ({"options": Options(time_limit=0)}, "INVALID_OPTION", "options.time_limit"),
        ({"options": Options(time_limit=math.nan)}, "INVALID_OPTION", "options.time_limit"),
        ({"options": Options(cost_per_km=-0.1)}, "INVALID_OPTION", "options.cost_per_km"),
        (
            {"options": Options(objective="fastest")},
            "INVALID_OPTION",  # type: ignore[arg-type]
            "options.objective",
        ),
        (
            {"options": Options(excluded_locations=frozenset({"nowhere"}))},
            "UNKNOWN_LOCATION",
            "options.excluded_locations",
        ),
    ],
)
def test_malformed_problem_is_rejected_with_its_reason(
    changes: dict[str, Any], reason: str, field: str
) -> None:
    with pytest.raises(InvalidProblem) as raised:
        _problem(**changes)
    assert raised.value.reason == reason
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)


def test_problem_data_is_read_only() -> None:
    problem = _problem()
    with pytest.raises(ValueError, match="read-only"):
        problem.atf[0, 0] = 5
    with pytest.raises(ValueError, match="read-only"):
        problem.distance_km[0] = 0.0


def test_build_takes_plain_values() -> None:
    problem = Problem.build(
        lines=[("A", 2), ("B", 1)],
        locations=[
            {"id": "L1", "latitude": 40.0, "longitude": -75.0},
            HERE.__class__("L2", 41, -75),
        ],
        atf={("A", "L1"): 2, ("B", "L2"): 3},
        destination=(40.5, -75.0),
        max_shipments=2,
        excluded_locations=["L2"],
        objective="cost",
    )
    assert problem.atf.dtype == np.int64
    assert problem.atf.tolist() == [[2, 0], [0, 3]]
    assert problem.options.excluded_locations == frozenset({"L2"})
    assert problem.options.objective.value == "cost"


def test_build_resolves_a_us_zip_destination() -> None:
    problem = Problem.build(lines=[("A", 1)], locations=[HERE], atf={}, postal_code=("US", "33101"))
    assert problem.destination == pytest.approx((25.7791, -80.1978))


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"atf": {("Z", "L1"): 1}, "destination": (0, 0)}, "UNKNOWN_SKU"),
        ({"atf": {("A", "L9"): 1}, "destination": (0, 0)}, "UNKNOWN_LOCATION"),
        ({"atf": {("A", "L1"): 1.5}, "destination": (0, 0)}, "INVALID_ATF"),
        ({"atf": {}, "postal_code": ("US", "00000")}, "UNKNOWN_POSTAL_CODE"),
        ({"atf": {}}, "INVALID_DESTINATION"),
        ({"atf": {}, "destination": (0, 0), "postal_code": ("US", "33101")}, "INVALID_DESTINATION"),
        ({"atf": {}, "destination": (0, 0), "max_stops": 2}, "INVALID_OPTION"),
        ({"atf": {}, "destination": (0, 0), "objective": "fastest"}, "INVALID_OPTION"),
    ],
)
def test_build_rejects_what_it_cannot_place(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidProblem) as raised:
        Problem.build(lines=[("A", 1)], locations=[HERE], **kwargs)
    assert raised.value.reason == reason


def test_build_rejects_a_location_dict_with_unknown_keys() -> None:
    with pytest.raises(InvalidProblem) as raised:
        Problem.build(
            lines=[("A", 1)],
            locations=[{"id": "L1", "lat": 1, "lon": 2}],
            atf={},
            destination=(0, 0),
        )
    assert raised.value.reason == "INVALID_LOCATION"
    assert raised.value.field == "locations[0]"
