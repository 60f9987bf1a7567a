"""RoutingService's requests: an order to route, where to and how."""

from __future__ import annotations

import math

from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.routing.v1 import routing_pb2 as rt

from server.domain import routing
from server.transport.validate.checker import MAX_POSTAL_CODE_LENGTH, Checker, micros

# ISO 3166-1 alpha-2 on locations; a destination may also give alpha-3 ("USA"), which the
# bundled postal-code table accepts.
MAX_COUNTRY_CODE_LENGTH = 3
MAX_ORDER_LINES = 100
MAX_CANDIDATES = 10_000
MAX_ALTERNATIVES = 10
DEFAULT_TIME_LIMIT_S = 2.0
MAX_TIME_LIMIT_S = 60.0


def route_order(request: rt.RouteOrderRequest) -> routing.Order:
    check = Checker()
    check.identifier("order_id", request.order_id)
    if check.count("lines", request.lines, MAX_ORDER_LINES):
        check.distinct("lines", [line.sku for line in request.lines])
    for index, line in enumerate(request.lines):
        check.identifier(f"lines[{index}].sku", line.sku)
        check.quantity(f"lines[{index}].quantity", line.quantity)
        if line.quantity > routing.MAX_QUANTITY:
            check.fail(
                f"lines[{index}].quantity",
                "QUANTITY_TOO_LARGE",
                f"must be at most {routing.MAX_QUANTITY} for routing",
            )
    destination = _destination(check, request)
    if request.location_group_id and request.location_ids:
        check.fail(
            "location_ids", "INVALID_FIELD", "give location_group_id or location_ids, not both"
        )
    if request.location_group_id:
        check.identifier("location_group_id", request.location_group_id)
    if check.count("location_ids", request.location_ids, MAX_CANDIDATES, minimum=0):
        check.distinct("location_ids", list(request.location_ids))
    for index, location_id in enumerate(request.location_ids):
        check.identifier(f"location_ids[{index}]", location_id)
    options = _routing_options(check, request.options)
    commit = _commit_mode(check, request)
    check.done()
    return routing.Order(
        order_id=request.order_id,
        lines=tuple((line.sku, line.quantity) for line in request.lines),
        destination=destination,
        group_id=request.location_group_id,
        location_ids=tuple(request.location_ids),
        excluded=frozenset(request.options.excluded_location_ids),
        options=options,
        commit=commit,
        reservation_id=request.reservation_id,
        reservation_ttl_us=(
            micros(request.reservation_ttl) if request.HasField("reservation_ttl") else None
        ),
    )


def _destination(check: Checker, request: rt.RouteOrderRequest) -> tuple[float, float]:
    kind = request.destination.WhichOneof("kind") if request.HasField("destination") else None
    if kind == "position":
        check.coordinates("destination.position", request.destination.position)
        return (request.destination.position.latitude, request.destination.position.longitude)
    if kind == "postal_code":
        return postal_code_centroid(
            check, "destination.postal_code", request.destination.postal_code
        )
    check.fail("destination", "MISSING_FIELD", "set position or postal_code")
    return (0.0, 0.0)


def postal_code_centroid(
    check: Checker, field: str, postal: rt.PostalCode | inv.PostalCode
) -> tuple[float, float]:
    """The (latitude, longitude) a postal code resolves to; (0, 0) after a violation."""
    if not _short_postal_code(check, field, postal):
        return (0.0, 0.0)
    found = routing.postal_code_centroid(postal.country_code, postal.postal_code)
    if found is None:
        check.fail(
            field,
            "UNKNOWN_POSTAL_CODE",
            f"{postal.country_code} {postal.postal_code!r} is not in the bundled postal-code"
            " table (US ZIP codes are supported)",
        )
        return (0.0, 0.0)
    return found


def _short_postal_code(check: Checker, field: str, postal: rt.PostalCode | inv.PostalCode) -> bool:
    """Whether the codes are short enough to look up (and to echo in an error)."""
    short = True
    for name, limit in (
        ("country_code", MAX_COUNTRY_CODE_LENGTH),
        ("postal_code", MAX_POSTAL_CODE_LENGTH),
    ):
        if len(getattr(postal, name)) > limit:
            check.fail(f"{field}.{name}", "INVALID_FIELD", f"must be at most {limit} characters")
            short = False
    return short


def _routing_options(check: Checker, options: rt.RoutingOptions) -> routing.Options:
    if options.objective not in (0, 1, 2):
        check.fail("options.objective", "INVALID_FIELD", "must be a known objective")
    if not 0 <= options.cost_per_km <= routing.MAX_COST_PER_KM:  # NaN fails every comparison
        check.fail(
            "options.cost_per_km",
            "INVALID_FIELD",
            f"must be a number in [0, {routing.MAX_COST_PER_KM:g}]",
        )
    if options.max_shipments < 0:
        check.fail("options.max_shipments", "INVALID_FIELD", "must not be negative")
    if not 0 <= options.alternatives <= MAX_ALTERNATIVES:
        check.fail("options.alternatives", "INVALID_FIELD", f"must be in [0, {MAX_ALTERNATIVES}]")
    if check.count(
        "options.excluded_location_ids", options.excluded_location_ids, MAX_CANDIDATES, minimum=0
    ):
        for index, location_id in enumerate(options.excluded_location_ids):
            check.identifier(f"options.excluded_location_ids[{index}]", location_id)
    time_limit = DEFAULT_TIME_LIMIT_S
    if options.HasField("time_limit"):
        time_limit_us = check.duration("options.time_limit", options.time_limit)
        time_limit = DEFAULT_TIME_LIMIT_S if time_limit_us is None else time_limit_us / 1e6
        if time_limit_us is not None and not 0 < time_limit <= MAX_TIME_LIMIT_S:
            check.fail(
                "options.time_limit", "INVALID_FIELD", f"must be in (0, {MAX_TIME_LIMIT_S:g}] s"
            )
            time_limit = DEFAULT_TIME_LIMIT_S
    return routing.Options(
        objective=routing.Objective.COST
        if options.objective == 2
        else routing.Objective.LEXICOGRAPHIC,
        cost_per_km=options.cost_per_km if math.isfinite(options.cost_per_km) else 0.0,
        max_shipments=options.max_shipments if options.max_shipments > 0 else None,
        allow_partial=options.allow_partial,
        keep_lines_whole=options.keep_lines_whole,
        alternatives=1 + max(0, min(options.alternatives, MAX_ALTERNATIVES)),
        time_limit=time_limit,
    )


def _commit_mode(check: Checker, request: rt.RouteOrderRequest) -> routing.CommitMode:
    if request.commit not in (0, 1, 2, 3):
        check.fail("commit", "INVALID_FIELD", "must be a known commit mode")
        return routing.CommitMode.DRY_RUN
    mode = routing.CommitMode(request.commit or 1)
    check.identifier(
        "reservation_id", request.reservation_id, required=mode is routing.CommitMode.TRANSFER
    )
    if request.HasField("reservation_ttl"):
        if mode is not routing.CommitMode.RESERVE:
            check.fail("reservation_ttl", "INVALID_FIELD", "applies to COMMIT_MODE_RESERVE only")
        else:
            check.ttl("reservation_ttl", request.reservation_ttl)
    return mode
