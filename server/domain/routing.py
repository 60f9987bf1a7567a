"""Routing over the ledger: an order and a ledger snapshot become a solver problem, and a plan
becomes reservation items (DESIGN.md section 5). The solver itself is the `solver` package;
the names it shares with the rest of the server (plans, options, the limits of what it can
route, postal-code lookup) are re-exported here, so that only the domain imports it."""

from __future__ import annotations

import enum
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

import solver
from server.domain import commands
from server.domain.errors import FailedPrecondition, NotFound
from server.domain.ledger import Ledger, Shippable, require_enabled, require_places
from server.domain.model import Location, Place, Reservation
from server.domain.port import LocationNumbering, UnitOfWork
from solver import Objective as Objective
from solver import Options as Options
from solver import Plan as Plan
from solver.geo import postal_code_centroid as postal_code_centroid
from solver.problem import MAX_COST_PER_KM as MAX_COST_PER_KM
from solver.problem import MAX_LATITUDE as MAX_LATITUDE
from solver.problem import MAX_LONGITUDE as MAX_LONGITUDE
from solver.problem import MAX_QUANTITY as MAX_QUANTITY
from solver.problem import MAX_SHIPMENT_COST as MAX_SHIPMENT_COST
from solver.problem import ValidLocations


class CommitMode(enum.IntEnum):
    DRY_RUN = 1
    RESERVE = 2
    TRANSFER = 3


@dataclass(frozen=True)
class Order:
    """A validated RouteOrder request."""

    order_id: str
    lines: tuple[tuple[str, int], ...]
    destination: tuple[float, float]
    group_id: str = ""
    location_ids: tuple[str, ...] = ()
    excluded: frozenset[str] = frozenset()
    options: solver.Options = field(default_factory=solver.Options)
    commit: CommitMode = CommitMode.DRY_RUN
    reservation_id: str = ""
    reservation_ttl_us: int | None = None

    @property
    def skus(self) -> list[str]:
        return [sku for sku, _ in self.lines]


@dataclass(frozen=True)
class Scope:
    """The candidate locations in column order, as the ledger names them and as the solver
    takes them (checked once, when every one of them is valid for the solver)."""

    candidates: tuple[Location, ...]
    location_ids: tuple[str, ...]
    solver_locations: tuple[solver.Location, ...]

    @classmethod
    def of(cls, candidates: Iterable[Location]) -> Scope:
        found = tuple(candidates)
        converted = [
            solver.Location(x.id, x.latitude, x.longitude, x.shipment_cost, x.priority)
            for x in found
        ]
        solver_locations: tuple[solver.Location, ...]
        try:
            solver_locations = ValidLocations(converted)
        except solver.InvalidProblem:  # each problem then checks the candidates it is given
            solver_locations = tuple(converted)
        return cls(found, tuple(location.id for location in found), solver_locations)

    def take(self, columns: npt.NDArray[np.intp]) -> tuple[solver.Location, ...]:
        """The solver locations of the candidates in `columns` (increasing)."""
        if isinstance(self.solver_locations, ValidLocations):
            return self.solver_locations.take(columns)
        return tuple(map(self.solver_locations.__getitem__, columns.tolist()))

    def without(self, excluded: Collection[str]) -> Scope:
        kept = [j for j, location_id in enumerate(self.location_ids) if location_id not in excluded]
        return Scope(
            tuple(self.candidates[j] for j in kept),
            tuple(self.location_ids[j] for j in kept),
            self.take(np.array(kept, dtype=np.intp)),
        )


@dataclass(frozen=True)
class Snapshot:
    """What routing reads from the ledger: the candidates and what each can ship now."""

    scope: Scope
    shippable: Mapping[str, Shippable]  # per SKU: ATF > 0 at positions in `candidates`
    reservation: Reservation | None

    @property
    def candidates(self) -> tuple[Location, ...]:
        return self.scope.candidates


class StalePlan(Exception):
    """The stock a plan relied on changed before it could be committed: solve again."""


def read_snapshot(uow: UnitOfWork, ledger: Ledger, order: Order) -> Snapshot:
    unknown = sorted(set(order.skus) - uow.known_skus(order.skus))
    if unknown:
        raise NotFound("SKU_NOT_FOUND", f"no location stocks {unknown[0]}", sku=unknown[0])
    scope = _scope(uow, order)
    if order.excluded:
        scope = scope.without(order.excluded)
    reservation = None
    if order.commit is CommitMode.TRANSFER:
        reservation = ledger.live_reservation(uow, order.reservation_id)
        check_reservation_matches(reservation, order)
    shippable = ledger.shippable(
        uow,
        order.skus,
        scope.location_ids,
        releasing=reservation,
        group_id="" if order.location_ids else order.group_id,
    )
    return Snapshot(scope, shippable, reservation)


_SCOPES = 16
_scopes: OrderedDict[str, tuple[LocationNumbering, Scope]] = OrderedDict()
"""The scopes of the groups routed over most recently ("": every ship-enabled location), each
with the numbering it was read at: one is valid while storage hands out that same numbering (the
same network version). Over thousands of candidates, building it costs more than the solve."""
_scopes_lock = threading.Lock()


def _scope(uow: UnitOfWork, order: Order) -> Scope:
    if order.location_ids:
        require_places(uow, [Place.location(x) for x in order.location_ids])
        found = uow.locations(order.location_ids)
        return Scope.of(found[location_id] for location_id in order.location_ids)
    numbering = uow.location_numbering()
    with _scopes_lock:
        known = _scopes.get(order.group_id)
        if known is not None and known[0] is numbering:
            _scopes.move_to_end(order.group_id)
            return known[1]
    if order.group_id:
        group = require_places(uow, [Place.group(order.group_id)])[order.group_id]
        require_enabled(uow, [Place.group(order.group_id)])
        found = uow.locations(group.location_ids)
        scope = Scope.of(found[location_id] for location_id in sorted(group.location_ids))
    else:
        scope = Scope.of(uow.ship_enabled_locations())
    with _scopes_lock:
        _scopes[order.group_id] = (numbering, scope)
        _scopes.move_to_end(order.group_id)
        while len(_scopes) > _SCOPES:
            _scopes.popitem(last=False)
    return scope


def check_reservation_matches(reservation: Reservation, order: Order) -> None:
    """TRANSFER routes exactly what the reservation holds at groups, per SKU."""
    held: dict[str, int] = {}
    for line in reservation.lines.values():
        if line.open and not line.place.is_location:
            held[line.sku] = held.get(line.sku, 0) + line.open
    ordered = dict(order.lines)
    if held != ordered:
        sku = min(set(held) ^ set(ordered) or {s for s in held if held[s] != ordered[s]})
        raise FailedPrecondition(
            "RESERVATION_MISMATCH",
            f"the order asks {ordered.get(sku, 0)} of {sku} but reservation {reservation.id} "
            f"holds {held.get(sku, 0)} at location groups",
            reservation_id=reservation.id,
            sku=sku,
            requested=ordered.get(sku, 0),
            reserved=held.get(sku, 0),
        )


def problem(order: Order, snapshot: Snapshot, time_limit_s: float) -> solver.Problem | None:
    """The solver's problem over the candidates that can ship something (None if none can), in
    candidate order, each ATF capped at its line's quantity."""
    shippable = [snapshot.shippable[sku] for sku in order.skus]
    ships = np.zeros(len(snapshot.candidates), dtype=bool)
    for stock in shippable:
        ships[stock.columns] = True
    useful = np.flatnonzero(ships)
    if not len(useful):
        return None
    position = np.cumsum(ships) - 1  # of each useful candidate among the useful ones
    atf = np.zeros((len(order.lines), len(useful)), dtype=np.int64)
    for i, (stock, (_, quantity)) in enumerate(zip(shippable, order.lines, strict=True)):
        atf[i, position[stock.columns]] = np.minimum(stock.units, quantity)
    options = order.options
    return solver.Problem(
        lines=tuple(solver.Line(sku, quantity) for sku, quantity in order.lines),
        locations=snapshot.scope.take(useful),
        atf=atf,
        destination=order.destination,
        options=solver.Options(
            objective=options.objective,
            cost_per_km=options.cost_per_km,
            max_shipments=options.max_shipments,
            allow_partial=options.allow_partial,
            keep_lines_whole=options.keep_lines_whole,
            alternatives=options.alternatives,
            time_limit=time_limit_s,
        ),
    )


def no_route(order: Order, shortfall: Mapping[str, int], reason: str = "NO_ROUTE") -> Exception:
    ordered = dict(order.lines)
    sku = min(shortfall) if shortfall else order.lines[0][0]
    missing = shortfall.get(sku, ordered[sku])
    return FailedPrecondition(
        reason,
        f"the candidate locations can ship only {ordered[sku] - missing} of the {ordered[sku]} "
        f"{sku} ordered",
        sku=sku,
        requested=ordered[sku],
        available=ordered[sku] - missing,
    )


def unrouted_plan(order: Order) -> solver.Plan:
    """With allow_partial and nothing shippable anywhere: everything is unrouted."""
    return solver.Plan(
        shipments=(),
        unrouted=dict(order.lines),
        objective=solver.Score(sum(q for _, q in order.lines), 0, 0, 0),
        proven_optimal=True,
        gap=None,
        method="nothing-shippable",
        candidates=0,
    )


def plan_items(plan: solver.Plan) -> list[commands.Item]:
    return [
        commands.Item(sku, Place.location(shipment.location_id), units)
        for shipment in plan.shipments
        for sku, units in shipment.units.items()
        if units
    ]


def check_still_shippable(
    plan: solver.Plan, shippable: Mapping[str, Shippable], location_ids: Sequence[str]
) -> None:
    """`shippable` was read at `location_ids`."""
    available = {sku: stock.by_location(location_ids) for sku, stock in shippable.items()}
    for item in plan_items(plan):
        if item.quantity > available[item.sku].get(item.place.id, 0):
            raise StalePlan(f"{item.place.id} can no longer ship {item.quantity} of {item.sku}")


def reserve(uow: UnitOfWork, ledger: Ledger, order: Order, plan: solver.Plan) -> Reservation:
    """RESERVE commit: a new reservation holding the plan's units where they ship."""
    items = plan_items(plan)
    locations = sorted({i.place.id for i in items})
    check_still_shippable(plan, ledger.shippable(uow, order.skus, locations), locations)
    reservation, _ = ledger.create_reservation(
        uow,
        commands.CreateReservation(
            order.reservation_id or order.order_id,
            order.order_id,
            tuple(items),
            ttl_us=order.reservation_ttl_us,
        ),
    )
    return reservation


def transfer(uow: UnitOfWork, ledger: Ledger, order: Order, plan: solver.Plan) -> Reservation:
    """TRANSFER commit: the order's group reservation moves onto the plan's locations."""
    reservation = ledger.live_reservation(uow, order.reservation_id)
    check_reservation_matches(reservation, order)
    items = plan_items(plan)
    locations = sorted({i.place.id for i in items})
    check_still_shippable(
        plan, ledger.shippable(uow, order.skus, locations, releasing=reservation), locations
    )
    moves = _moves_from_groups(reservation, items)
    return ledger.transfer(uow, commands.TransferReservation(reservation.id, tuple(moves), False))


def _moves_from_groups(
    reservation: Reservation, items: Sequence[commands.Item]
) -> list[commands.TransferItem]:
    """Draws each planned item from the reservation's open group lines of its SKU, in order."""
    left = {
        key: line.open
        for key, line in sorted(reservation.lines.items())
        if line.open and not line.place.is_location
    }
    moves = []
    for item in items:
        needed = item.quantity
        for (sku, place), open_units in left.items():
            if sku != item.sku or not open_units or not needed:
                continue
            taken = min(open_units, needed)
            left[(sku, place)] -= taken
            needed -= taken
            moves.append(commands.TransferItem(sku, place, item.place, taken))
    return _merge(moves)


def _merge(moves: list[commands.TransferItem]) -> list[commands.TransferItem]:
    totals: dict[tuple[str, Place, Place], int] = {}
    for move in moves:
        key = (move.sku, move.from_place, move.to_place)
        totals[key] = totals.get(key, 0) + move.quantity
    return [commands.TransferItem(s, a, b, q) for (s, a, b), q in totals.items()]
