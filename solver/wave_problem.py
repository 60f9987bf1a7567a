"""The wave problem: many orders routed over one shared stock and each location's capacity.

`WaveProblem` is frozen and validated on construction, like `Problem`: bad input raises
`InvalidProblem` with an UPPER_SNAKE `reason`. Each order keeps the single-order options that
make sense per order (max shipments, whole lines, partial routing, exclusions, its candidates);
the objective is the wave's. `order_problem` turns one order and what is left of the stock and
capacity into today's single-order `Problem`, so the per-order optimum, order-by-order routing
and the greedy baseline all run today's code on the same data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from solver.problem import (
    MAX_COST_PER_KM,
    MAX_QUANTITY,
    IntArray,
    InvalidProblem,
    Line,
    Location,
    Objective,
    Options,
    Problem,
    ValidLocations,
    _check_position,
    _is_int,
    _is_real,
)


@dataclass(frozen=True)
class WaveOrder:
    """One order of the wave: its lines, destination and own routing options.

    `candidates`: the location ids it may ship from (None: every location of the wave).
    Without `allow_partial` an order is routed whole or not at all (refused).
    """

    id: str
    lines: tuple[Line, ...]
    destination: tuple[float, float]
    candidates: frozenset[str] | None = None
    max_shipments: int | None = None
    allow_partial: bool = False
    keep_lines_whole: bool = False
    excluded_locations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Capacity:
    """What a location can still pick in the wave: orders (shipments) and/or units."""

    orders: int | None = None
    units: int | None = None


@dataclass(frozen=True, eq=False)
class WaveProblem:
    """Orders over shared stock. `stock[s, l]` holds units of `skus[s]` at `locations[l]`
    (every SKU some order asks for; others are dropped); `capacity` maps location ids to their
    `Capacity` (absent: unlimited)."""

    orders: tuple[WaveOrder, ...]
    locations: ValidLocations
    skus: tuple[str, ...]
    stock: IntArray
    capacity: Mapping[str, Capacity] = field(default_factory=dict)
    objective: Objective = Objective.LEXICOGRAPHIC
    cost_per_km: float = 0.0
    location_index: Mapping[str, int] = field(init=False, repr=False)
    sku_index: Mapping[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if type(self.locations) is not ValidLocations:
            set_(self, "locations", ValidLocations(self.locations))
        set_(self, "orders", tuple(self.orders))
        set_(self, "skus", tuple(self.skus))
        set_(self, "location_index", {x.id: j for j, x in enumerate(self.locations)})
        set_(self, "sku_index", {s: k for k, s in enumerate(self.skus)})
        if len(self.sku_index) != len(self.skus):
            raise _invalid("DUPLICATE_SKU", "SKUs must be unique", "skus", self.skus)
        stock = np.array(self.stock, dtype=np.int64, copy=True)
        if stock.shape != (len(self.skus), len(self.locations)):
            raise _invalid("ATF_SHAPE_MISMATCH", "stock is skus x locations", "stock", stock.shape)
        if stock.size and stock.min() < 0:
            raise _invalid("NEGATIVE_ATF", "stock cannot be negative", "stock", int(stock.min()))
        stock.setflags(write=False)
        set_(self, "stock", stock)
        set_(self, "capacity", dict(self.capacity))
        self._validate_capacity()
        if not isinstance(self.objective, Objective):
            raise _invalid("INVALID_OPTION", "must be an Objective", "objective", self.objective)
        if not _is_real(self.cost_per_km) or not 0 <= float(self.cost_per_km) <= MAX_COST_PER_KM:
            raise _invalid("INVALID_OPTION", "out of range", "cost_per_km", self.cost_per_km)
        seen: set[str] = set()
        for k, order in enumerate(self.orders):
            self._validate_order(k, order)
            if order.id in seen:
                raise _invalid(
                    "DUPLICATE_ORDER_ID", "order ids are unique", f"orders[{k}]", order.id
                )
            seen.add(order.id)

    def _validate_capacity(self) -> None:
        for location_id, capacity in self.capacity.items():
            where = f"capacity[{location_id!r}]"
            if location_id not in self.location_index:
                raise _invalid("UNKNOWN_LOCATION", "capacity of an unknown location", where, None)
            if not isinstance(capacity, Capacity):
                raise _invalid("INVALID_CAPACITY", "must be a Capacity", where, capacity)
            for value in (capacity.orders, capacity.units):
                if value is not None and (not _is_int(value) or value < 0):
                    raise _invalid("INVALID_CAPACITY", "must be None or >= 0", where, value)

    def _validate_order(self, k: int, order: WaveOrder) -> None:
        where = f"orders[{k}]"
        if not isinstance(order, WaveOrder):
            raise _invalid("INVALID_ORDER", "must be a WaveOrder", where, order)
        if not isinstance(order.id, str) or not order.id:
            raise _invalid("EMPTY_ORDER_ID", "must be a non-empty string", f"{where}.id", order.id)
        if not order.lines:
            raise _invalid("NO_LINES", "an order needs at least one line", f"{where}.lines", ())
        skus: set[str] = set()
        for i, line in enumerate(order.lines):
            at = f"{where}.lines[{i}]"
            if not isinstance(line, Line) or not isinstance(line.sku, str) or not line.sku:
                raise _invalid("INVALID_LINE", "must be a Line with a SKU", at, line)
            if line.sku in skus:
                raise _invalid("DUPLICATE_SKU", "one line per SKU", at, line.sku)
            skus.add(line.sku)
            if not _is_int(line.quantity) or not 1 <= line.quantity <= MAX_QUANTITY:
                raise _invalid(
                    "NON_POSITIVE_QUANTITY", f"must be in 1..{MAX_QUANTITY}", at, line.quantity
                )
            if line.sku not in self.sku_index:
                raise _invalid("UNKNOWN_SKU", "SKU missing from the wave's skus", at, line.sku)
        if not isinstance(order.destination, tuple) or len(order.destination) != 2:
            raise _invalid(
                "INVALID_COORDINATES", "(lat, lon)", f"{where}.destination", order.destination
            )
        _check_position(*order.destination, f"{where}.destination")
        named = set(order.excluded_locations) | set(order.candidates or ())
        for location_id in sorted(named - set(self.location_index)):
            raise _invalid("UNKNOWN_LOCATION", "not a location of the wave", where, location_id)
        if order.max_shipments is not None and (
            not _is_int(order.max_shipments) or order.max_shipments < 1
        ):
            raise _invalid(
                "INVALID_OPTION", "None or >= 1", f"{where}.max_shipments", order.max_shipments
            )
        for name in ("allow_partial", "keep_lines_whole"):
            if not isinstance(getattr(order, name), bool):
                raise _invalid("INVALID_OPTION", "must be a bool", f"{where}.{name}", None)

    @classmethod
    def build(
        cls,
        *,
        orders: Iterable[WaveOrder | Mapping[str, Any]],
        locations: Iterable[Location | Mapping[str, Any]],
        stock: Mapping[tuple[str, str], int],
        capacity: Mapping[str, Capacity | tuple[int | None, int | None]] | None = None,
        objective: Objective | str = Objective.LEXICOGRAPHIC,
        cost_per_km: float = 0.0,
    ) -> WaveProblem:
        """A wave from plain values: orders as `WaveOrder`s or dicts (lines as (sku, qty)
        pairs), stock as {(sku, location id): units}, capacity as {location id: Capacity or
        (orders, units)}."""
        order_list = [x if isinstance(x, WaveOrder) else _order_from(x) for x in orders]
        location_list = ValidLocations(
            x if isinstance(x, Location) else Location(**x) for x in locations
        )
        skus = sorted({line.sku for order in order_list for line in order.lines})
        sku_index = {s: k for k, s in enumerate(skus)}
        location_index = {x.id: j for j, x in enumerate(location_list)}
        matrix = np.zeros((len(skus), len(location_list)), dtype=np.int64)
        for (sku, location_id), units in stock.items():
            if location_id not in location_index:
                raise _invalid("UNKNOWN_LOCATION", "stock at an unknown location", "stock", sku)
            if not _is_int(units):
                raise _invalid("INVALID_ATF", "must be whole units", "stock", (sku, units))
            if sku in sku_index:
                matrix[sku_index[sku], location_index[location_id]] = units
        capacities = {
            key: value if isinstance(value, Capacity) else Capacity(*value)
            for key, value in (capacity or {}).items()
        }
        return cls(
            tuple(order_list),
            location_list,
            tuple(skus),
            matrix,
            capacities,
            Objective(objective),
            cost_per_km,
        )

    # -- derived data ------------------------------------------------------------------------

    def order_capacity(self) -> IntArray:
        """Orders each location can still take (a large number where unlimited)."""
        return self._capacity_array("orders")

    def unit_capacity(self) -> IntArray:
        """Units each location can still pick (a large number where unlimited)."""
        return self._capacity_array("units")

    def _capacity_array(self, name: str) -> IntArray:
        limits = np.full(len(self.locations), _UNLIMITED, dtype=np.int64)
        for location_id, capacity in self.capacity.items():
            value = getattr(capacity, name)
            if value is not None:
                limits[self.location_index[location_id]] = value
        return limits

    def allowed(self, k: int) -> IntArray:
        """Positions of the locations order k may ship from (candidates less exclusions)."""
        order = self.orders[k]
        ok = np.ones(len(self.locations), dtype=bool)
        if order.candidates is not None:
            ok[:] = False
            ok[[self.location_index[x] for x in order.candidates]] = True
        if order.excluded_locations:
            ok[[self.location_index[x] for x in order.excluded_locations]] = False
        return np.flatnonzero(ok)

    def rows(self, k: int) -> IntArray:
        """Row of `stock` for each line of order k."""
        return np.array([self.sku_index[x.sku] for x in self.orders[k].lines], dtype=np.intp)

    def order_problem(
        self,
        k: int,
        stock: IntArray | None = None,
        orders_left: IntArray | None = None,
        units_left: IntArray | None = None,
        time_limit: float = 10.0,
    ) -> Problem:
        """Order k alone as today's single-order problem, over `stock` and the capacity left
        (defaults: the wave's). Its candidates are the allowed locations with capacity left
        holding some of its SKUs; each line's ATF is capped by the location's units left (the
        single-order model has no per-location unit limit, so this relaxes it)."""
        stock = self.stock if stock is None else stock
        orders_left = self.order_capacity() if orders_left is None else orders_left
        units_left = self.unit_capacity() if units_left is None else units_left
        allowed = self.allowed(k)
        atf = np.minimum(stock[np.ix_(self.rows(k), allowed)], units_left[allowed])
        keep = atf.any(axis=0) & (orders_left[allowed] > 0) & (units_left[allowed] > 0)
        order = self.orders[k]
        options = Options(
            objective=self.objective,
            cost_per_km=self.cost_per_km,
            max_shipments=order.max_shipments,
            allow_partial=order.allow_partial,
            keep_lines_whole=order.keep_lines_whole,
            time_limit=time_limit,
        )
        return Problem(
            order.lines,
            self.locations.take(allowed[keep]),
            atf[:, keep],
            order.destination,
            options,
        )

    def remaining(
        self, stock: IntArray, orders_left: IntArray, units_left: IntArray
    ) -> WaveProblem:
        """The same wave over what is left of the stock and capacity."""
        capacity = {
            x.id: Capacity(
                None if orders_left[j] >= _UNLIMITED else int(orders_left[j]),
                None if units_left[j] >= _UNLIMITED else int(units_left[j]),
            )
            for j, x in enumerate(self.locations)
            if orders_left[j] < _UNLIMITED or units_left[j] < _UNLIMITED
        }
        return replace(self, stock=stock, capacity=capacity)


_UNLIMITED = 2**40
"""Stands for "no capacity limit": above any stock or demand a problem can hold."""


def _invalid(reason: str, message: str, field_: str, value: object) -> InvalidProblem:
    return InvalidProblem(reason, message, field=field_, value=value)


def _order_from(values: Mapping[str, Any]) -> WaveOrder:
    fields = dict(values)
    try:
        fields["lines"] = tuple(x if isinstance(x, Line) else Line(*x) for x in fields["lines"])
        for name in ("candidates", "excluded_locations"):
            if fields.get(name) is not None:
                fields[name] = frozenset(fields[name])
        fields["destination"] = tuple(fields["destination"])
        return WaveOrder(**fields)
    except (KeyError, TypeError) as error:
        raise _invalid("INVALID_ORDER", str(error), "orders", values.get("id")) from None
