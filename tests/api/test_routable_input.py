"""What the API accepts, routing can use: every reason the solver's problem validation can give
(collected from solver/problem.py itself) is refused at the API with INVALID_ARGUMENT naming the
field, or cannot arise because the proto type cannot carry it or routing builds that part of the
problem itself; and RouteOrder answers data at every bound the API accepts, never INTERNAL."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.routing.v1 import routing_pb2 as rt

import solver.geo
import solver.problem
from server.domain.model import Location, LocationType
from solver.problem import (
    MAX_COST_PER_KM,
    MAX_LATITUDE,
    MAX_LONGITUDE,
    MAX_QUANTITY,
    MAX_SHIPMENT_COST,
)
from tests.api.helpers import RPC_TIMEOUT_S, group, refused
from tests.support import at, item, level, location

pytestmark = pytest.mark.timeout(120)

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)
HERE = rt.Destination(position=inv.GeoPoint(latitude=40.0, longitude=-75.0))


def solver_reasons() -> set[str]:
    """Every reason solver/problem.py raises `InvalidProblem` with, read from its source."""
    tree = ast.parse(Path(solver.problem.__file__).read_text())
    first_arguments = [
        node.args[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"_invalid", "InvalidProblem"}
    ]
    literals = [x.value for x in first_arguments if isinstance(x, ast.Constant)]
    # The one other call is `_invalid` handing its `reason` on to InvalidProblem.
    others = [ast.unparse(x) for x in first_arguments if not isinstance(x, ast.Constant)]
    assert others == ["reason"], f"reasons this test cannot read: {others}"
    assert len(literals) > 20, "InvalidProblem is no longer raised as this test expects"
    return set(literals)


def order(*lines: tuple[str, int], **fields: Any) -> rt.RouteOrderRequest:
    return rt.RouteOrderRequest(
        order_id=fields.pop("order_id", "order-1"),
        lines=[rt.OrderLine(sku=sku, quantity=quantity) for sku, quantity in lines],
        destination=fields.pop("destination", HERE),
        **fields,
    )


def options(**fields: Any) -> rt.RouteOrderRequest:
    return order(("sku-1", 1), options=rt.RoutingOptions(**fields))


def upsert(**fields: Any) -> inv.UpsertLocationsRequest:
    return inv.UpsertLocationsRequest(locations=[location("site", **fields)])


def at_position(latitude: float, longitude: float) -> inv.UpsertLocationsRequest:
    return inv.UpsertLocationsRequest(locations=[location("site", latitude, longitude)])


# --- how each reason is kept out ------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The request that would carry the bad value is INVALID_ARGUMENT, naming `field`."""

    method: str
    request: Any
    field: str


@dataclass(frozen=True)
class Typed:
    """The proto field's type cannot carry the bad value."""

    message: Any
    field: str
    type: int


@dataclass(frozen=True)
class Built:
    """Routing builds this part of the problem from the order and the ledger, not from input;
    RouteOrder over a network full of near misses (see `near_misses`) answers with a plan."""

    why: str


@dataclass(frozen=True)
class CentroidsInRange:
    """Every centroid of the bundled postal-code table is a valid position."""


Guard = Refused | Typed | Built | CentroidsInRange

GUARDS: dict[str, tuple[Guard, ...]] = {
    "NO_LINES": (Refused("RouteOrder", order(), "lines"),),
    "INVALID_LINE": (Built("routing passes the order's lines as (sku, quantity) pairs"),),
    "EMPTY_SKU": (Refused("RouteOrder", order(("", 1)), "lines[0].sku"),),
    "DUPLICATE_SKU": (Refused("RouteOrder", order(("sku-1", 1), ("sku-1", 2)), "lines[1]"),),
    "INVALID_QUANTITY": (Typed(rt.OrderLine, "quantity", FieldDescriptor.TYPE_INT64),),
    "NON_POSITIVE_QUANTITY": (
        Refused("RouteOrder", order(("sku-1", 0)), "lines[0].quantity"),
        Refused("RouteOrder", order(("sku-1", -1)), "lines[0].quantity"),
    ),
    "QUANTITY_TOO_LARGE": (
        Refused("RouteOrder", order(("sku-1", MAX_QUANTITY + 1)), "lines[0].quantity"),
    ),
    "INVALID_LOCATION": (Built("routing makes a solver.Location of each stored candidate"),),
    "EMPTY_LOCATION_ID": (
        Refused(
            "UpsertLocations",
            inv.UpsertLocationsRequest(locations=[location("")]),
            "locations[0].id",
        ),
        Refused("RouteOrder", order(("sku-1", 1), location_ids=[""]), "location_ids[0]"),
    ),
    "DUPLICATE_LOCATION_ID": (
        Refused("RouteOrder", order(("sku-1", 1), location_ids=["a", "a"]), "location_ids[1]"),
        Refused(
            "UpsertLocationGroups",
            inv.UpsertLocationGroupsRequest(location_groups=[group("g", "a", "a")]),
            "location_groups[0].location_ids[1]",
        ),
    ),
    "INVALID_COORDINATES": (
        Refused(
            "UpsertLocations", at_position(MAX_LATITUDE + 1e-9, 0), "locations[0].position.latitude"
        ),
        Refused(
            "UpsertLocations",
            at_position(0, -MAX_LONGITUDE - 1e-9),
            "locations[0].position.longitude",
        ),
        Refused("UpsertLocations", at_position(math.nan, 0), "locations[0].position.latitude"),
        Refused("UpsertLocations", at_position(0, math.inf), "locations[0].position.longitude"),
        Refused(
            "UpsertLocations",
            inv.UpsertLocationsRequest(
                locations=[inv.Location(id="site", type=inv.LOCATION_TYPE_STORE)]
            ),
            "locations[0].position",
        ),
        Refused(
            "RouteOrder",
            order(("sku-1", 1), destination=rt.Destination(position=inv.GeoPoint(latitude=-91))),
            "destination.position.latitude",
        ),
        CentroidsInRange(),
    ),
    "INVALID_SHIPMENT_COST": (
        Refused("UpsertLocations", upsert(shipment_cost=2e9), "locations[0].shipment_cost"),
        Refused("UpsertLocations", upsert(shipment_cost=-0.01), "locations[0].shipment_cost"),
        Refused("UpsertLocations", upsert(shipment_cost=math.nan), "locations[0].shipment_cost"),
        Refused("UpsertLocations", upsert(shipment_cost=math.inf), "locations[0].shipment_cost"),
    ),
    "INVALID_PRIORITY": (Typed(inv.Location, "priority", FieldDescriptor.TYPE_INT32),),
    "ATF_SHAPE_MISMATCH": (
        Built("routing fills the ATF matrix from the order's SKUs x candidates"),
    ),
    "INVALID_ATF": (Built("the ledger's ATF is whole units (int64)"),),
    "NEGATIVE_ATF": (
        Built("the ledger's ATF is never below 0, even where reservations exceed on hand"),
        Refused(
            "SetStock",
            inv.SetStockRequest(levels=[level("site", "sku-1", -1)]),
            "levels[0].on_hand",
        ),
    ),
    "UNKNOWN_SKU": (Built("routing reads ATF only for the order's SKUs"),),
    "UNKNOWN_LOCATION": (
        Built("routing reads ATF only at candidates and drops excluded ones itself"),
    ),
    "INVALID_DESTINATION": (
        Refused(
            "RouteOrder",
            rt.RouteOrderRequest(order_id="o", lines=[rt.OrderLine(sku="s", quantity=1)]),
            "destination",
        ),
    ),
    "UNKNOWN_POSTAL_CODE": (
        Refused(
            "RouteOrder",
            order(
                ("sku-1", 1),
                destination=rt.Destination(
                    postal_code=rt.PostalCode(country_code="US", postal_code="00000")
                ),
            ),
            "destination.postal_code",
        ),
    ),
    "INVALID_OPTION": (
        Refused("RouteOrder", options(objective=7), "options.objective"),  # type: ignore[arg-type]
        Refused("RouteOrder", options(cost_per_km=MAX_COST_PER_KM * 1.01), "options.cost_per_km"),
        Refused("RouteOrder", options(cost_per_km=-1), "options.cost_per_km"),
        Refused("RouteOrder", options(cost_per_km=math.nan), "options.cost_per_km"),
        Refused("RouteOrder", options(max_shipments=-1), "options.max_shipments"),
        Refused("RouteOrder", options(alternatives=11), "options.alternatives"),
        Refused("RouteOrder", options(alternatives=-1), "options.alternatives"),
        Refused("RouteOrder", options(time_limit=Duration()), "options.time_limit"),
        Refused("RouteOrder", options(time_limit=Duration(seconds=61)), "options.time_limit"),
        Refused(
            "RouteOrder", options(time_limit=Duration(seconds=1, nanos=-1)), "options.time_limit"
        ),
    ),
}


def near_misses(inventory: Any, reservations: Any, routing: Any) -> None:
    """RouteOrder where the ledger holds what the solver would refuse if routing passed it on:
    stock of SKUs not ordered, stock at locations that are not candidates or are excluded, and
    a location whose reservations exceed its on hand after shrink (ATF 0, not negative)."""
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[location(name, 40.0 + n, -75.0) for n, name in enumerate("abcde")]
        )
    )
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[level(name, sku, 5) for name in "abcde" for sku in ("sku-1", "other")]
        )
    )
    reservations.CreateReservation(res.CreateReservationRequest(items=[item("sku-1", at("b"), 5)]))
    inventory.AdjustStock(
        inv.AdjustStockRequest(
            adjustments=[inv.StockAdjustment(location_id="b", sku="sku-1", on_hand_delta=-3)]
        )
    )
    for request, routed in (
        (order(("sku-1", 5), location_ids=["a", "b", "c"], options=excluding("c", "e")), 5),
        (order(("sku-1", 9), options=excluding("a", allow_partial=True)), 9),
        (
            order(
                ("sku-1", 5),
                ("other", 1),
                location_ids=["b"],
                options=excluding(allow_partial=True),
            ),
            1,
        ),
    ):
        plan = routing.RouteOrder(request, timeout=RPC_TIMEOUT_S).plan
        shipped = {
            (s.location_id, line.sku): line.quantity for s in plan.shipments for line in s.lines
        }
        assert sum(shipped.values()) == routed, shipped
        assert ("b", "sku-1") not in shipped


def excluding(*location_ids: str, **fields: Any) -> rt.RoutingOptions:
    return rt.RoutingOptions(excluded_location_ids=location_ids, **fields)


@pytest.mark.parametrize("reason", sorted(solver_reasons() | set(GUARDS)))
def test_every_solver_validation_reason_is_refused_by_the_api_or_cannot_arise(
    reason: str, inventory: Any, reservations: Any, routing: Any
) -> None:
    assert reason in solver_reasons(), f"{reason} is no longer a solver reason: drop its guard"
    assert reason in GUARDS, f"new solver reason {reason}: say how the API keeps it out"
    stubs = {"RouteOrder": routing.RouteOrder}
    built = False
    for guard in GUARDS[reason]:
        if isinstance(guard, Refused):
            method: Callable[..., Any] = stubs.get(guard.method) or getattr(inventory, guard.method)
            got = refused(method, guard.request)
            assert got.code == grpc.StatusCode.INVALID_ARGUMENT, (guard, got)
            assert guard.field in got.fields, (guard, got)
        elif isinstance(guard, Typed):
            assert guard.message.DESCRIPTOR.fields_by_name[guard.field].type == guard.type
        elif isinstance(guard, CentroidsInRange):
            centroids = solver.geo._us_zip_table().values()
            assert all(
                abs(lat) <= MAX_LATITUDE and abs(lon) <= MAX_LONGITUDE for lat, lon in centroids
            )
        elif not built:
            near_misses(inventory, reservations, routing)
            built = True


def test_a_location_whose_shipment_cost_routing_cannot_use_is_refused_and_not_stored(
    inventory: Any,
) -> None:
    got = refused(inventory.UpsertLocations, upsert(shipment_cost=2e9))

    assert (got.code, got.reason, got.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        ["locations[0].shipment_cost"],
    )
    listed = inventory.ListLocations(inv.ListLocationsRequest(), timeout=RPC_TIMEOUT_S)
    assert list(listed.locations) == []


EDGES = {  # id: (latitude, longitude, shipment_cost, priority)
    "north-east": (MAX_LATITUDE, MAX_LONGITUDE, MAX_SHIPMENT_COST, INT32_MAX),
    "south-west": (-MAX_LATITUDE, -MAX_LONGITUDE, 0.0, INT32_MIN),
    "date-line": (0.0, MAX_LONGITUDE, MAX_SHIPMENT_COST, INT32_MIN),
    "date-line-west": (0.0, -MAX_LONGITUDE, 0.0, INT32_MAX),
}


@pytest.mark.parametrize("objective", [rt.OBJECTIVE_FEWEST_SHIPMENTS, rt.OBJECTIVE_LEAST_COST])
@pytest.mark.parametrize(
    "destination",
    [(MAX_LATITUDE, -MAX_LONGITUDE), (-MAX_LATITUDE, MAX_LONGITUDE), (0.0, MAX_LONGITUDE)],
    ids=["north-pole", "south-pole", "date-line"],
)
def test_route_order_answers_for_data_at_every_bound_the_api_accepts(
    inventory: Any, routing: Any, objective: int, destination: tuple[float, float]
) -> None:
    """Locations at the poles and on the date line with the largest shipment cost and extreme
    priorities, lines of the largest quantity, the largest cost per km and every alternative."""
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(
            locations=[
                location(name, lat, lon, shipment_cost=cost, priority=priority)
                for name, (lat, lon, cost, priority) in EDGES.items()
            ]
        )
    )
    half = MAX_QUANTITY // 2 + 1  # the largest line needs two locations
    inventory.SetStock(
        inv.SetStockRequest(
            levels=[level(name, sku, half) for name in EDGES for sku in ("bulk", "more")]
        )
    )
    request = order(
        ("bulk", MAX_QUANTITY),
        ("more", MAX_QUANTITY),
        destination=rt.Destination(
            position=inv.GeoPoint(latitude=destination[0], longitude=destination[1])
        ),
        options=rt.RoutingOptions(
            objective=objective,  # type: ignore[arg-type]
            cost_per_km=MAX_COST_PER_KM,
            alternatives=10,
            time_limit=Duration(seconds=60),
        ),
    )

    for commit in (rt.COMMIT_MODE_DRY_RUN, rt.COMMIT_MODE_RESERVE):
        request.commit = commit
        response = routing.RouteOrder(request, timeout=RPC_TIMEOUT_S)
        for plan in (response.plan, *response.alternatives):
            assert [x.quantity for x in plan.unrouted] == []
            assert len(plan.shipments) == 2
    assert response.reservation.id == "order-1"


def test_a_location_stored_before_the_bounds_makes_route_order_fail_precondition_not_internal(
    omniroute: Any, inventory: Any, routing: Any
) -> None:
    """A shipment cost the API now refuses may still be stored by an older version: routing
    over it names the field to correct instead of answering INTERNAL."""
    with omniroute.store.write(network=True) as uow:
        uow.put_locations(
            [Location("legacy", "legacy", LocationType.WAREHOUSE, 40.0, -75.0, shipment_cost=2e9)]
        )
    inventory.SetStock(inv.SetStockRequest(levels=[level("legacy", "sku-1", 5)]))

    got = refused(routing.RouteOrder, order(("sku-1", 1), location_ids=["legacy"]))

    assert (got.code, got.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "UNROUTABLE_LOCATION")
    assert "shipment_cost" in got.metadata["field"]
