"""The routing problem: one order, its candidate locations with their ATF, and the options.

`Problem` is immutable and validated on construction (PyVRP's "validated data, then solve"): every
bad input raises `InvalidProblem` with a machine-readable UPPER_SNAKE `reason`, the offending
`field` and `value`, before any solving starts. `Problem.build` takes plain Python values (tuples,
dicts, ZIP codes) so callers need no numpy.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from solver import geo

# The bounds a problem is validated against; callers (the server's request validation) import
# them, so what they accept is exactly what the solver takes.
MAX_QUANTITY = 10**9
"""Largest demand per line (units); keeps every sum the solver forms far from int64 limits."""
MAX_SHIPMENT_COST = 10**9
MAX_COST_PER_KM = 10**6
MAX_ALTERNATIVES = 100
MAX_TIME_LIMIT = 3600.0
MAX_LATITUDE = 90.0
MAX_LONGITUDE = 180.0

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class InvalidProblem(ValueError):
    """The problem is malformed; `reason` (UPPER_SNAKE) says how, `field`/`value` say where."""

    def __init__(self, reason: str, message: str, *, field: str, value: object = None) -> None:
        super().__init__(f"{reason}: {message} ({field}={value!r})")
        self.reason = reason
        self.field = field
        self.value = value


class Objective(enum.StrEnum):
    """What "best" means; both objectives first minimise unrouted units (with allow_partial)."""

    LEXICOGRAPHIC = "lexicographic"
    """Fewest shipments, then least total distance (OM's fewest splits + nearest)."""
    COST = "cost"
    """Least sum of (shipment_cost + cost_per_km * km) over shipments; then shipments, distance."""


@dataclass(frozen=True)
class Line:
    """One order line: `quantity` units of `sku` (SKUs are unique within an order)."""

    sku: str
    quantity: int


@dataclass(frozen=True)
class Location:
    """A candidate location. Lower `priority` values are preferred when plans tie."""

    id: str
    latitude: float
    longitude: float
    shipment_cost: float = 0.0
    priority: int = 0


@dataclass(frozen=True)
class Options:
    """How to route. Defaults: lexicographic, whole order or nothing, lines may be split."""

    objective: Objective = Objective.LEXICOGRAPHIC
    cost_per_km: float = 0.0
    """Currency per km of each shipment's distance (cost objective only)."""
    max_shipments: int | None = None
    """At most this many locations ship (None: no limit)."""
    allow_partial: bool = False
    """Route what can be routed and report the rest as unrouted, instead of failing."""
    keep_lines_whole: bool = False
    """Every line ships from one location (with allow_partial: what that location can ship)."""
    excluded_locations: frozenset[str] = frozenset()
    """Location ids that must not ship (they must be among the problem's locations)."""
    alternatives: int = 1
    """Return the best plan and the next `alternatives - 1` best distinct location sets."""
    time_limit: float = 10.0
    """Seconds; when it runs out the best plan found is returned with its gap."""


def _invalid(reason: str, message: str, field_: str, value: object) -> InvalidProblem:
    return InvalidProblem(reason, message, field=field_, value=value)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


# Exact types the vectorised checks accept; anything else (bool, str, rarer numpy scalars) takes
# the item-by-item checks, which accept or name it precisely.
_INT_TYPES = frozenset({int, np.int64, np.int32})
_REAL_TYPES = _INT_TYPES | {float, np.float64, np.float32}
_ID = operator.attrgetter("id")
_LATITUDE = operator.attrgetter("latitude")
_LONGITUDE = operator.attrgetter("longitude")
_SHIPMENT_COST = operator.attrgetter("shipment_cost")
_PRIORITY = operator.attrgetter("priority")


def _check_position(latitude: object, longitude: object, field_: str) -> None:
    if not (_is_real(latitude) and _is_real(longitude)):
        raise _invalid("INVALID_COORDINATES", "not numbers", field_, (latitude, longitude))
    lat, lon = float(latitude), float(longitude)  # type: ignore[arg-type]
    if not (
        math.isfinite(lat)
        and math.isfinite(lon)
        and abs(lat) <= MAX_LATITUDE
        and abs(lon) <= MAX_LONGITUDE
    ):
        raise _invalid(
            "INVALID_COORDINATES",
            f"latitude must be in [-{MAX_LATITUDE:g}, {MAX_LATITUDE:g}] and longitude in "
            f"[-{MAX_LONGITUDE:g}, {MAX_LONGITUDE:g}]",
            field_,
            (lat, lon),
        )


def _check_options(options: Options) -> None:
    def bad(name: str, message: str) -> InvalidProblem:
        return _invalid("INVALID_OPTION", message, f"options.{name}", getattr(options, name))

    if not isinstance(options.objective, Objective):
        raise bad("objective", "must be an Objective")
    cost = options.cost_per_km
    if not _is_real(cost) or not (0 <= float(cost) <= MAX_COST_PER_KM):
        raise bad("cost_per_km", f"must be a number in [0, {MAX_COST_PER_KM}]")
    if options.max_shipments is not None and (
        not _is_int(options.max_shipments) or options.max_shipments < 1
    ):
        raise bad("max_shipments", "must be None or an integer >= 1")
    if not isinstance(options.allow_partial, bool):
        raise bad("allow_partial", "must be a bool")
    if not isinstance(options.keep_lines_whole, bool):
        raise bad("keep_lines_whole", "must be a bool")
    if not isinstance(options.excluded_locations, frozenset) or not all(
        isinstance(x, str) for x in options.excluded_locations
    ):
        raise bad("excluded_locations", "must be a frozenset of location ids")
    if not _is_int(options.alternatives) or not 1 <= options.alternatives <= MAX_ALTERNATIVES:
        raise bad("alternatives", f"must be an integer in [1, {MAX_ALTERNATIVES}]")
    limit = options.time_limit
    if not _is_real(limit) or not (0 < float(limit) <= MAX_TIME_LIMIT):
        raise bad("time_limit", f"must be seconds in (0, {MAX_TIME_LIMIT}]")


@dataclass(frozen=True, eq=False)
class Problem:
    """One order to route. `atf[i, l]` is the ATF of line i's SKU at location l (int64 units).

    Derived, read-only: `distance_km[l]` from location l to the destination (`geo.distances_km`).
    """

    lines: tuple[Line, ...]
    locations: tuple[Location, ...]
    atf: IntArray
    destination: tuple[float, float]
    options: Options = field(default_factory=Options)
    distance_km: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "lines", tuple(self.lines))
        self._validate_lines()
        if type(self.locations) is not ValidLocations:
            set_(self, "locations", tuple(self.locations))
            _validate_locations(self.locations)
        atf = self._validated_atf()
        atf.setflags(write=False)
        set_(self, "atf", atf)
        if not isinstance(self.destination, tuple) or len(self.destination) != 2:
            raise _invalid(
                "INVALID_COORDINATES",
                "must be (latitude, longitude)",
                "destination",
                self.destination,
            )
        _check_position(*self.destination, "destination")
        set_(self, "destination", (float(self.destination[0]), float(self.destination[1])))
        if not isinstance(self.options, Options):
            raise _invalid("INVALID_OPTION", "must be an Options", "options", self.options)
        _check_options(self.options)
        if self.options.excluded_locations:
            known = set(map(_ID, self.locations))
            for location_id in sorted(self.options.excluded_locations - known):
                raise _invalid(
                    "UNKNOWN_LOCATION",
                    "excluded location is not a candidate",
                    "options.excluded_locations",
                    location_id,
                )
        located = self.locations
        distance = (
            geo.distances_km(located.latitude, located.longitude, *self.destination)
            if isinstance(located, ValidLocations)
            else geo.distances_km(
                list(map(_LATITUDE, located)), list(map(_LONGITUDE, located)), *self.destination
            )
        )
        distance.setflags(write=False)
        set_(self, "distance_km", distance)

    def _validate_lines(self) -> None:
        if not self.lines:
            raise _invalid("NO_LINES", "an order needs at least one line", "lines", ())
        seen: set[str] = set()
        for i, line in enumerate(self.lines):
            if not isinstance(line, Line):
                raise _invalid("INVALID_LINE", "must be a Line", f"lines[{i}]", line)
            if not isinstance(line.sku, str) or not line.sku:
                raise _invalid(
                    "EMPTY_SKU", "must be a non-empty string", f"lines[{i}].sku", line.sku
                )
            if line.sku in seen:
                raise _invalid(
                    "DUPLICATE_SKU",
                    "each SKU may appear on one line only",
                    f"lines[{i}].sku",
                    line.sku,
                )
            seen.add(line.sku)
            if not _is_int(line.quantity):
                raise _invalid(
                    "INVALID_QUANTITY", "must be an integer", f"lines[{i}].quantity", line.quantity
                )
            if line.quantity <= 0:
                raise _invalid(
                    "NON_POSITIVE_QUANTITY",
                    "must be at least 1",
                    f"lines[{i}].quantity",
                    line.quantity,
                )
            if line.quantity > MAX_QUANTITY:
                raise _invalid(
                    "QUANTITY_TOO_LARGE",
                    f"must be at most {MAX_QUANTITY}",
                    f"lines[{i}].quantity",
                    line.quantity,
                )

    def _validated_atf(self) -> IntArray:
        shape = (len(self.lines), len(self.locations))
        raw = np.asarray(self.atf)
        if raw.shape != shape:
            raise _invalid("ATF_SHAPE_MISMATCH", f"must have shape {shape}", "atf", raw.shape)
        whole_units = raw.dtype.kind in "iub" or (
            raw.dtype.kind == "f" and np.all(np.isfinite(raw)) and np.all(raw == np.rint(raw))
        )
        if raw.size and not whole_units:
            raise _invalid("INVALID_ATF", "must be whole units", "atf", str(raw.dtype))
        atf = np.array(raw, dtype=np.int64, copy=True).reshape(shape)
        if atf.size and atf.min() < 0:
            i, j = np.argwhere(atf < 0)[0]
            raise _invalid(
                "NEGATIVE_ATF",
                "ATF cannot be negative",
                f"atf[{self.lines[i].sku!r}, {self.locations[j].id!r}]",
                int(atf[i, j]),
            )
        return atf

    @classmethod
    def build(
        cls,
        *,
        lines: Iterable[tuple[str, int] | Line],
        locations: Iterable[Location | Mapping[str, Any]],
        atf: Mapping[tuple[str, str], int],
        destination: tuple[float, float] | None = None,
        postal_code: tuple[str, str] | None = None,
        **options: Any,
    ) -> Problem:
        """A problem from plain values.

        lines: (sku, quantity) pairs; locations: `Location`s or dicts with the same keys;
        atf: {(sku, location_id): units}, absent pairs are 0; destination: (lat, lon), or
        postal_code: (country, code) resolved offline (US ZIPs); options: `Options` fields.
        """
        try:
            line_list = [x if isinstance(x, Line) else Line(*x) for x in lines]
        except TypeError as error:
            raise _invalid(
                "INVALID_LINE", f"lines are (sku, quantity) pairs: {error}", "lines", None
            ) from None
        location_list = []
        for j, x in enumerate(locations):
            try:
                location_list.append(x if isinstance(x, Location) else Location(**x))
            except TypeError as error:
                raise _invalid("INVALID_LOCATION", str(error), f"locations[{j}]", x) from None
        if (destination is None) == (postal_code is None):
            raise _invalid(
                "INVALID_DESTINATION",
                "give exactly one of destination, postal_code",
                "destination",
                (destination, postal_code),
            )
        if postal_code is not None:
            country, code = postal_code
            found = geo.postal_code_centroid(country, code)
            if found is None:
                raise _invalid(
                    "UNKNOWN_POSTAL_CODE",
                    "not in the bundled postal-code table",
                    "postal_code",
                    postal_code,
                )
            destination = found
        sku_index = {line.sku: i for i, line in enumerate(line_list)}
        location_index = {location.id: j for j, location in enumerate(location_list)}
        matrix = np.zeros((len(line_list), len(location_list)), dtype=np.int64)
        if not _fill_atf(matrix, atf, sku_index, location_index):
            _fill_atf_one_by_one(matrix, atf, sku_index, location_index)
        if "excluded_locations" in options:
            options["excluded_locations"] = frozenset(options["excluded_locations"])
        if "objective" in options and isinstance(options["objective"], str):
            try:
                options["objective"] = Objective(options["objective"])
            except ValueError:
                raise _invalid(
                    "INVALID_OPTION", "unknown objective", "options.objective", options["objective"]
                ) from None
        try:
            opts = Options(**options)
        except TypeError as error:
            raise _invalid("INVALID_OPTION", str(error), "options", sorted(options)) from None
        assert destination is not None
        return cls(tuple(line_list), tuple(location_list), matrix, destination, opts)

    @property
    def quantities(self) -> IntArray:
        """Demand per line, as int64."""
        return np.fromiter(
            (line.quantity for line in self.lines), dtype=np.int64, count=len(self.lines)
        )


def _fill_atf(
    matrix: IntArray,
    atf: Mapping[tuple[str, str], int],
    sku_index: Mapping[str, int],
    location_index: Mapping[str, int],
) -> bool:
    """Fills `matrix` from `atf` in one numpy assignment; False (nothing written) if any entry
    needs the item-by-item checks."""
    try:
        rows = [sku_index[sku] for sku, _ in atf]
        columns = [location_index[location_id] for _, location_id in atf]
    except (KeyError, TypeError, ValueError):
        return False
    units = list(atf.values())
    if not {type(x) for x in units} <= _INT_TYPES:
        return False
    matrix[rows, columns] = units
    return True


def _fill_atf_one_by_one(
    matrix: IntArray,
    atf: Mapping[tuple[str, str], int],
    sku_index: Mapping[str, int],
    location_index: Mapping[str, int],
) -> None:
    for (sku, location_id), units in atf.items():
        if sku not in sku_index:
            raise _invalid(
                "UNKNOWN_SKU", "ATF given for a SKU that is not ordered", "atf", (sku, location_id)
            )
        if location_id not in location_index:
            raise _invalid(
                "UNKNOWN_LOCATION",
                "ATF given for a location that is not a candidate",
                "atf",
                (sku, location_id),
            )
        if not _is_int(units):
            raise _invalid("INVALID_ATF", "must be whole units", "atf", (sku, location_id, units))
        matrix[sku_index[sku], location_index[location_id]] = units


def _validate_locations(locations: tuple[Location, ...]) -> None:
    """All at once with numpy when every location is well formed (RouteOrder builds problems
    of 1,000+ candidates: one by one, this was most of `Problem.build`), else one by one
    to name the first bad field."""
    if not _locations_look_valid(locations):
        _validate_locations_one_by_one(locations)


def _locations_look_valid(locations: tuple[Location, ...]) -> bool:
    """Each field gathered in one pass by `map` (no Python loop per location)."""
    if not set(map(type, locations)) <= {Location}:
        return False
    ids = list(map(_ID, locations))
    distinct = set(ids)
    if not set(map(type, distinct)) <= {str} or "" in distinct or len(distinct) != len(ids):
        return False
    latitude = list(map(_LATITUDE, locations))
    longitude = list(map(_LONGITUDE, locations))
    cost = list(map(_SHIPMENT_COST, locations))
    if not set(map(type, latitude)).union(map(type, longitude), map(type, cost)) <= (_REAL_TYPES):
        return False
    if not set(map(type, map(_PRIORITY, locations))) <= _INT_TYPES:
        return False
    lat = np.array(latitude, dtype=np.float64)
    lon = np.array(longitude, dtype=np.float64)
    costs = np.array(cost, dtype=np.float64)
    return bool(
        np.all(np.isfinite(lat) & np.isfinite(lon))
        and np.all((np.abs(lat) <= MAX_LATITUDE) & (np.abs(lon) <= MAX_LONGITUDE))
        and np.all((costs >= 0) & (costs <= MAX_SHIPMENT_COST))
    )


def _validate_locations_one_by_one(locations: tuple[Location, ...]) -> None:
    seen: set[str] = set()
    for j, location in enumerate(locations):
        where = f"locations[{j}]"
        if not isinstance(location, Location):
            raise _invalid("INVALID_LOCATION", "must be a Location", where, location)
        if not isinstance(location.id, str) or not location.id:
            raise _invalid(
                "EMPTY_LOCATION_ID", "must be a non-empty string", f"{where}.id", location.id
            )
        if location.id in seen:
            raise _invalid(
                "DUPLICATE_LOCATION_ID",
                "location ids must be unique",
                f"{where}.id",
                location.id,
            )
        seen.add(location.id)
        _check_position(location.latitude, location.longitude, f"{where}.latitude")
        cost = location.shipment_cost
        if not _is_real(cost) or not 0 <= float(cost) <= MAX_SHIPMENT_COST:
            raise _invalid(
                "INVALID_SHIPMENT_COST",
                f"must be a number in [0, {MAX_SHIPMENT_COST}]",
                f"{where}.shipment_cost",
                cost,
            )
        if not _is_int(location.priority):
            raise _invalid(
                "INVALID_PRIORITY", "must be an integer", f"{where}.priority", location.priority
            )


class ValidLocations(tuple[Location, ...]):
    """Locations that passed `Problem`'s checks, with their coordinates as arrays: a caller that
    routes many orders over the same candidates (a server) checks them once, and `Problem` takes
    any subset of them (`take`) without checking them again."""

    latitude: FloatArray
    longitude: FloatArray

    def __new__(cls, locations: Iterable[Location]) -> ValidLocations:
        found = super().__new__(cls, locations)
        _validate_locations(found)
        found.latitude = np.array(list(map(_LATITUDE, found)), dtype=np.float64)
        found.longitude = np.array(list(map(_LONGITUDE, found)), dtype=np.float64)
        found.latitude.setflags(write=False)
        found.longitude.setflags(write=False)
        return found

    def take(self, indices: npt.NDArray[np.intp]) -> ValidLocations:
        """The locations at `indices`, which must increase (so the ids stay distinct)."""
        if len(indices) > 1 and not np.all(np.diff(indices) > 0):
            raise ValueError("indices must increase")
        subset = super().__new__(ValidLocations, map(self.__getitem__, indices.tolist()))
        subset.latitude = self.latitude[indices]
        subset.longitude = self.longitude[indices]
        subset.latitude.setflags(write=False)
        subset.longitude.setflags(write=False)
        return subset
