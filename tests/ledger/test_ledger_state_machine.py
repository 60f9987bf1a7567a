"""The ledger's invariants (DESIGN.md sections 2-3) as a Hypothesis state machine driving the
real server over a real gRPC channel on a real SQLite file.

Every step sends one request (or a few) and predicts its outcome from a plain-Python model
(tests/ledger/model.py) whose availability comes from brute-force oracles (tests/ledger/oracle.py):
which requests succeed, with which response, and which are refused, with which code, reason and
metadata. A refused request must change nothing: the whole database is compared before and after.

After every step the SQLite file is read directly with sqlite3 and checked:
- the counters: stock.reserved == open location lines, group_reserved == open group lines;
- every line: quantity == fulfilled + released + transferred_out + open, all >= 0; on hand >= 0;
- reservation states agree with the lines (expired ones hold nothing open);
- the database equals the model (stock levels, effective times, every line, expiry);
- group coverage: the open group demand of each SKU is coverable by member capacity (checked
  by cut enumeration, i.e. Hall's theorem), except after stock fell or an unchecked transfer:
  then reservation operations may only leave the uncovered amount as it was or smaller;
- GetAvailability equals an independent recomputation from the database rows, and a place's
  numbers do not depend on which other places the same call asks about;
- the change log, read from the file and folded into a latest-value table, equals
  GetAvailability for every SKU at every place, its sequence numbers increasing.

The expiry sweeper's own thread never runs (interval one hour); the machine advances a fake
clock and calls `expire_due` itself.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res

from server.app import start_server
from server.domain.ledger import Ledger as DomainLedger
from server.storage.sqlite import SqliteStore
from server.sweeper import expire_due
from tests.api.test_reservation_batches import error_of
from tests.ledger.model import (
    CLOSED,
    EXPIRED,
    GROUP,
    LOCATION,
    Booking,
    Ledger,
    Level,
    Line,
    Place,
    dump,
    read_database,
)
from tests.support import failure

# Overlapping groups: grp-ab and grp-bc share loc-b, grp-abcd contains both, grp-de reaches
# loc-e only through loc-d (so with grp-abcd empty it is a separate component).
LOCATIONS = ("loc-a", "loc-b", "loc-c", "loc-d", "loc-e")
GROUPS = {
    "grp-ab": ("loc-a", "loc-b"),
    "grp-bc": ("loc-b", "loc-c"),
    "grp-abcd": ("loc-a", "loc-b", "loc-c", "loc-d"),
    "grp-de": ("loc-d", "loc-e"),
}
SKUS = ("sku-1", "sku-2")
PLACES: tuple[Place, ...] = (
    *((LOCATION, location) for location in LOCATIONS),
    *((GROUP, group) for group in GROUPS),
)
CREATE_ITEMS = st.lists(
    st.tuples(
        st.sampled_from(SKUS), st.sampled_from(PLACES), st.integers(1, 8) | st.integers(9, 30)
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda item: item[:2],
)
SECOND = 1_000_000
START_US = 1_700_000_000 * SECOND

OK = grpc.StatusCode.OK
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
ALREADY_EXISTS = grpc.StatusCode.ALREADY_EXISTS


class Refused(Exception):
    """What the model expects the server to answer instead of a response."""

    def __init__(self, code: grpc.StatusCode, reason: str, **metadata: object) -> None:
        super().__init__(f"{code.name} {reason} {metadata}")
        self.code = code
        self.reason = reason
        self.metadata = {key: str(value) for key, value in metadata.items()}


def place_message(place: Place) -> inv.Place:
    kind, place_id = place
    return (
        inv.Place(location_id=place_id)
        if kind == LOCATION
        else inv.Place(location_group_id=place_id)
    )


def place_name(place: Place) -> str:
    """How the server names a place in error metadata."""
    kind, place_id = place
    return f"{'location' if kind == LOCATION else 'group'}:{place_id}"


def place_of(message: inv.Place) -> Place:
    if message.WhichOneof("kind") == "location_id":
        return (LOCATION, message.location_id)
    return (GROUP, message.location_group_id)


def micros(stamp: timestamp_pb2.Timestamp) -> int:
    return stamp.seconds * SECOND + stamp.nanos // 1000


def stamp(us: int) -> timestamp_pb2.Timestamp:
    seconds, rest = divmod(us, SECOND)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=rest * 1000)


def assert_reservation(message: res.Reservation, booking: Booking, reservation_id: str) -> None:
    """A reservation in a response is exactly the model's."""
    assert message.id == reservation_id
    assert message.state == booking.state
    assert micros(message.create_time) == booking.create_us
    assert micros(message.update_time) == booking.update_us
    if booking.expire_us is None:
        assert not message.HasField("expire_time")
    else:
        assert micros(message.expire_time) == booking.expire_us
    got = {}
    for line in message.lines:
        assert line.open == line.quantity - line.fulfilled - line.released - line.transferred_out
        kind, place_id = place_of(line.place)
        got[(line.sku, kind, place_id)] = Line(
            line.quantity, line.fulfilled, line.released, line.transferred_out
        )
    assert got == booking.lines


def expect_reservation(booking: Booking, reservation_id: str) -> Callable[[Any], None]:
    """A checker of a response's reservation against the booking as the request left it. In a
    batch the checks run after every request is predicted, and a later request of the batch may
    change the same booking: each response shows the reservation as its own request left it."""
    expected = copy.deepcopy(booking)
    return lambda response: assert_reservation(response.reservation, expected, reservation_id)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START_US
        self.directory = Path(tempfile.mkdtemp(prefix="omniroute-ledger-"))
        path = self.directory / "ledger.sqlite3"
        self.store = SqliteStore(path, synchronous="NORMAL")
        self.ledger = DomainLedger(clock=lambda: self.now)
        self.running = start_server(
            "localhost:0", self.store, ledger=self.ledger, sweep_interval_s=3600
        )
        self.channel = grpc.insecure_channel(f"localhost:{self.running.port}")
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self.channel)
        self.reservations = reservation_pb2_grpc.ReservationServiceStub(self.channel)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.model = Ledger(dict(GROUPS))
        self.history: list[tuple[str, Any, Any]] = []  # (method, request, first response)
        self.counter = 0
        self.checks = 0
        self.exempt = False  # this step may leave group demand less covered than before
        # While a batch rule gathers its requests: (method, request, predict) of each.
        self.gathered: list[tuple[str, Any, Callable[[Ledger], Callable[[Any], None]]]] | None = (
            None
        )
        self.deficits = dict.fromkeys(SKUS, 0)
        # The change log folded into the latest record per (sku, place); nothing exists yet.
        self.feed = {
            (sku, kind, place_id): (False, 0, 0, 0, 0, 0, 0, 0, None)
            for sku in SKUS
            for kind, place_id in PLACES
        }
        self.feed_seq = 0
        self.inventory.UpsertLocations(
            inv.UpsertLocationsRequest(
                locations=[
                    inv.Location(
                        id=location,
                        display_name=location,
                        type=inv.LOCATION_TYPE_WAREHOUSE,
                        position=inv.GeoPoint(latitude=40.0, longitude=-75.0),
                    )
                    for location in LOCATIONS
                ]
            )
        )
        self.inventory.UpsertLocationGroups(
            inv.UpsertLocationGroupsRequest(
                location_groups=[
                    inv.LocationGroup(id=group, display_name=group, location_ids=members)
                    for group, members in GROUPS.items()
                ]
            )
        )

    def teardown(self) -> None:
        self.channel.close()
        self.running.stop(grace_s=1)
        self.db.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- plumbing ------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def request_id(self, data: st.DataObject) -> str:
        return self.fresh("rq") if data.draw(st.integers(0, 4), label="with id") else ""

    def stub(self, method: str) -> Callable[[Any], Any]:
        if method in ("SetStock", "AdjustStock"):
            return getattr(self.inventory, method)  # type: ignore[no-any-return]
        return getattr(self.reservations, method)  # type: ignore[no-any-return]

    def call(
        self, method: str, request: Any, predict: Callable[[Ledger], Callable[[Any], None]]
    ) -> tuple[Any, Any]:
        """Sends the request and holds the server to the model's prediction. `predict` works on
        a copy of the model: it raises Refused, or returns a checker of the response. Returns
        (response, None) or (None, failure)."""
        if self.gathered is not None:  # a batch's request: the batch's request_id covers it
            request.ClearField("request_id")
            self.gathered.append((method, request, predict))
            return None, None
        before = dump(self.db)
        trial = copy.deepcopy(self.model)
        try:
            check: Callable[[Any], None] | None = predict(trial)
            expected: Refused | None = None
        except Refused as refusal:
            check, expected = None, refusal
        try:
            response = self.stub(method)(request)
        except grpc.RpcError as error:
            got = failure(error)
            assert expected is not None, f"{method} refused with {got} where the model accepts"
            assert (got.code, got.reason) == (expected.code, expected.reason), (got, expected)
            for key, value in expected.metadata.items():
                assert got.metadata.get(key) == value, (key, got.metadata, expected.metadata)
            assert dump(self.db) == before, f"refused {method} changed the database"
            return None, got
        assert expected is None, f"{method} succeeded where the model expects {expected}"
        assert check is not None
        check(response)
        self.model = trial
        if request.request_id:
            self.history.append((method, request, response))
        return response, None

    def live(self, model: Ledger, reservation_id: str) -> Booking:
        booking = model.bookings.get(reservation_id)
        if booking is None:
            raise Refused(NOT_FOUND, "RESERVATION_NOT_FOUND", reservation_id=reservation_id)
        if booking.expired or booking.due(self.now):
            raise Refused(FAILED_PRECONDITION, "RESERVATION_EXPIRED", reservation_id=reservation_id)
        return booking

    def require_open(
        self, booking: Booking, reservation_id: str, sku: str, place: Place, quantity: int
    ) -> None:
        """Refused unless the reservation holds at least `quantity` open at the place."""
        line = booking.lines.get((sku, *place))
        held = line.open if line else 0
        if line is None or quantity > held:
            raise Refused(
                FAILED_PRECONDITION,
                "INSUFFICIENT_RESERVED_QUANTITY",
                reservation_id=reservation_id,
                sku=sku,
                place=place_name(place),
                requested=quantity,
                open=held,
            )

    def pick_reservation(self, data: st.DataObject) -> str:
        """Mostly active reservations, sometimes closed or expired ones, rarely an unknown id."""
        active = [rid for rid, booking in self.model.bookings.items() if booking.state == 1]
        others = [rid for rid in self.model.bookings if rid not in active]
        choice = data.draw(st.integers(0, 9), label="which reservation")
        if choice == 0 or not self.model.bookings:
            return "r-unknown"
        pool = active if active and (choice > 2 or not others) else others
        return data.draw(st.sampled_from(pool), label="reservation")

    # --- stock ---------------------------------------------------------------------------

    @initialize(data=st.data())
    def stock_the_network(self, data: st.DataObject) -> None:
        """Most (location, SKU) pairs start with some stock, so reservations have a chance."""
        pairs = [
            (location, sku)
            for location in LOCATIONS
            for sku in SKUS
            if data.draw(st.integers(0, 4), label=f"stock {location} {sku}")
        ]
        if pairs:
            self.set_stock_levels(data, pairs, fresh=True)

    @rule(data=st.data())
    def set_stock(self, data: st.DataObject) -> None:
        pairs = data.draw(
            st.lists(
                st.tuples(st.sampled_from(LOCATIONS), st.sampled_from(SKUS)),
                min_size=1,
                max_size=3,
                unique=True,
            ),
            label="pairs",
        )
        self.set_stock_levels(data, pairs)

    def set_stock_levels(
        self, data: st.DataObject, pairs: list[tuple[str, str]], *, fresh: bool = False
    ) -> None:
        """Absolute levels, with effective times that are sometimes older than the stored one
        (skipped and reported so), equal to it (applied), in the future, or left to the
        server (now)."""
        levels, plans = [], []
        for location, sku in pairs:
            stored = self.model.level(location, sku).effective_us
            when = (
                "unset"
                if fresh
                else data.draw(
                    st.sampled_from(["unset", "now", "stored", "older", "older", "newer"]),
                    label="effective",
                )
            )
            if when == "stored" and stored is not None:
                effective: int | None = stored
            elif when == "older" and stored is not None and stored >= 10 * SECOND:
                effective = stored - data.draw(st.integers(1, 10)) * SECOND
            elif when == "newer":
                effective = self.now + data.draw(st.integers(1, 30)) * SECOND
            elif when == "now":
                effective = self.now
            else:
                effective = None
            futures = tuple(
                data.draw(
                    st.lists(
                        st.tuples(
                            st.integers(1, 6),
                            st.none()
                            | st.integers(1, 30).map(lambda d: START_US + d * 86400 * SECOND),
                        ),
                        max_size=2,
                    ),
                    label="futures",
                )
            )
            level = Level(
                data.draw(st.integers(0, 20), label="on hand"),
                data.draw(st.sampled_from((0, 0, 0, 1, 2, 3)), label="safety"),
                futures,
                effective,
            )
            plans.append((location, sku, level))
            message = inv.StockLevel(
                location_id=location,
                sku=sku,
                on_hand=level.on_hand,
                safety_stock=level.safety_stock,
                futures=[
                    inv.Future(quantity=quantity, expected_time=stamp(expected))
                    if expected is not None
                    else inv.Future(quantity=quantity)
                    for quantity, expected in futures
                ],
            )
            if effective is not None:
                message.effective_time.CopyFrom(stamp(effective))
            levels.append(message)
        request = inv.SetStockRequest(levels=levels, request_id=self.request_id(data))

        def predict(model: Ledger) -> Callable[[Any], None]:
            expected = []
            for location, sku, level in plans:
                stored = model.level(location, sku).effective_us
                effective = self.now if level.effective_us is None else level.effective_us
                if stored is not None and effective < stored:
                    expected.append((location, sku, inv.STOCK_UPDATE_OUTCOME_SKIPPED_STALE, stored))
                    continue
                model.levels[(location, sku)] = Level(
                    level.on_hand, level.safety_stock, level.futures, effective
                )
                expected.append((location, sku, inv.STOCK_UPDATE_OUTCOME_APPLIED, effective))

            def check(response: inv.SetStockResponse) -> None:
                got = [
                    (r.location_id, r.sku, r.outcome, micros(r.stored_effective_time))
                    for r in response.results
                ]
                assert got == expected

            return check

        self.exempt = True
        self.call("SetStock", request, predict)

    @rule(data=st.data())
    def adjust_stock(self, data: st.DataObject) -> None:
        pairs = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(LOCATIONS),
                    st.sampled_from(SKUS),
                    st.integers(-15, -1) | st.integers(1, 15),
                ),
                min_size=1,
                max_size=2,
                unique_by=lambda t: t[:2],
            ),
            label="adjustments",
        )
        request = inv.AdjustStockRequest(
            adjustments=[
                inv.StockAdjustment(location_id=location, sku=sku, on_hand_delta=delta)
                for location, sku, delta in pairs
            ],
            request_id=self.request_id(data),
        )

        def predict(model: Ledger) -> Callable[[Any], None]:
            expected = []
            for location, sku, delta in pairs:
                applied = model.adjust(location, sku, delta)
                expected.append((location, sku, model.level(location, sku).on_hand, applied))

            def check(response: inv.AdjustStockResponse) -> None:
                got = [(r.location_id, r.sku, r.on_hand, r.applied_delta) for r in response.results]
                assert got == expected

            return check

        self.exempt = True
        self.call("AdjustStock", request, predict)

    # --- reservations --------------------------------------------------------------------

    def create(
        self,
        reservation_id: str,
        items: list[tuple[str, Place, int]],
        *,
        allow_partial: bool = False,
        ttl_s: int | None = None,
        request_id: str = "",
    ) -> tuple[Any, Any]:
        request = res.CreateReservationRequest(
            reservation_id=reservation_id,
            items=[
                res.ReservationItem(sku=sku, place=place_message(place), quantity=quantity)
                for sku, place, quantity in items
            ],
            allow_partial=allow_partial,
            request_id=request_id,
        )
        if ttl_s is not None:
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=ttl_s))

        def predict(model: Ledger) -> Callable[[Any], None]:
            if reservation_id in model.bookings:
                raise Refused(
                    ALREADY_EXISTS, "RESERVATION_ALREADY_EXISTS", reservation_id=reservation_id
                )
            key = reservation_id or "(generated)"
            booking = model.create(
                key, self.now, None if ttl_s is None else self.now + ttl_s * SECOND
            )
            granted = []
            for sku, place, quantity in items:
                available = model.available_to_order(sku, place)
                if quantity > available and not allow_partial:
                    raise Refused(
                        FAILED_PRECONDITION,
                        "INSUFFICIENT_STOCK",
                        sku=sku,
                        place=place_name(place),
                        requested=quantity,
                        available=available,
                    )
                units = min(quantity, available)
                if units:
                    model.reserve(key, sku, place, units)
                granted.append((sku, place, quantity, units))
            if not booking.lines:
                sku, place, quantity = items[0]
                raise Refused(
                    FAILED_PRECONDITION,
                    "INSUFFICIENT_STOCK",
                    sku=sku,
                    place=place_name(place),
                    requested=quantity,
                    available=0,
                )

            def check(response: res.CreateReservationResponse) -> None:
                got_id = response.reservation.id
                if not reservation_id:
                    assert got_id
                    assert got_id not in model.bookings
                    model.bookings[got_id] = model.bookings.pop(key)
                assert_reservation(response.reservation, booking, got_id)
                got = [
                    (item.sku, place_of(item.place), item.requested, item.reserved)
                    for item in response.items
                ]
                assert got == granted

            return check

        return self.call("CreateReservation", request, predict)

    @rule(data=st.data())
    def create_reservation(self, data: st.DataObject) -> None:
        items = data.draw(
            st.lists(
                st.tuples(
                    st.sampled_from(SKUS),
                    st.sampled_from(PLACES),
                    st.integers(1, 8) | st.integers(9, 30),
                ),
                min_size=1,
                max_size=3,
                unique_by=lambda item: item[:2],
            ),
            label="items",
        )
        choice = data.draw(st.integers(0, 9), label="id kind")
        if choice == 0 and self.model.bookings and data.draw(st.booleans()):
            reservation_id = data.draw(st.sampled_from(sorted(self.model.bookings)))
        elif choice == 1:
            reservation_id = ""
        else:
            reservation_id = self.fresh("r")
        self.create(
            reservation_id,
            items,
            allow_partial=data.draw(st.booleans(), label="allow_partial"),
            ttl_s=data.draw(st.none() | st.integers(5, 120), label="ttl"),
            request_id=self.request_id(data),
        )

    @rule(data=st.data())
    def reserve_exactly_the_reported_ato(self, data: st.DataObject) -> None:
        """The rule for users: reserving up to the reported ATO succeeds; one more does not."""
        sku = data.draw(st.sampled_from(SKUS), label="sku")
        place = data.draw(st.sampled_from(PLACES), label="place")
        kind, place_id = place
        response = self.inventory.GetAvailability(
            inv.GetAvailabilityRequest(
                skus=[sku],
                location_ids=[place_id] if kind == LOCATION else [],
                location_group_ids=[place_id] if kind == GROUP else [],
            )
        )
        ato = response.records[0].available_to_order
        _, refused = self.create(self.fresh("r"), [(sku, place, ato + 1)])
        assert refused is not None, f"reserved {ato + 1} of {sku} at {place} with ATO {ato}"
        assert refused.reason == "INSUFFICIENT_STOCK"
        assert refused.metadata["available"] == str(ato)
        if ato:
            _created, refused = self.create(
                self.fresh("r"),
                [(sku, place, ato)],
                ttl_s=data.draw(st.none() | st.integers(5, 120), label="ttl"),
            )
            assert refused is None, f"could not reserve the reported ATO {ato}: {refused}"

    def pick_line(
        self, data: st.DataObject, booking: Booking | None, *, locations_only: bool = False
    ) -> tuple[str, Place, int]:
        """Mostly an open line of the reservation (at a location, for fulfilment) and at most
        its open quantity; sometimes one unit too many, or any SKU at any place."""
        lines = sorted(booking.lines.items()) if booking else []
        open_lines = [(key, line) for key, line in lines if line.open]
        preferred = [(key, line) for key, line in open_lines if key[1] == LOCATION]
        pool = (preferred if locations_only else []) or open_lines or lines
        if pool and data.draw(st.integers(0, 7), label="from its lines"):
            (sku, kind, place_id), line = data.draw(st.sampled_from(pool))
            most = max(1, line.open) + (data.draw(st.integers(0, 4)) == 0)
            return sku, (kind, place_id), data.draw(st.integers(1, most), label="quantity")
        return (
            data.draw(st.sampled_from(SKUS)),
            data.draw(st.sampled_from(PLACES)),
            data.draw(st.integers(1, 3), label="quantity"),
        )

    def transfer_items(
        self, data: st.DataObject, booking: Booking | None
    ) -> list[tuple[str, Place, Place, int]]:
        items: list[tuple[str, Place, Place, int]] = []
        for _ in range(data.draw(st.integers(1, 2), label="transfer items")):
            sku, source, quantity = self.pick_line(data, booking)
            if source[0] == GROUP and data.draw(st.booleans()):
                target: Place = (LOCATION, data.draw(st.sampled_from(GROUPS[source[1]])))
            else:
                target = data.draw(st.sampled_from([p for p in PLACES if p != source]))
            if all((sku, source, target) != item[:3] for item in items):
                items.append((sku, source, target, quantity))
        return items

    @precondition(lambda self: self.model.bookings)
    @rule(data=st.data())
    def transfer(self, data: st.DataObject) -> None:
        reservation_id = self.pick_reservation(data)
        items = self.transfer_items(data, self.model.bookings.get(reservation_id))
        ignore = data.draw(st.integers(0, 5), label="ignore check") == 0
        request = res.TransferReservationRequest(
            reservation_id=reservation_id,
            items=[
                res.TransferItem(
                    sku=sku,
                    from_place=place_message(source),
                    to_place=place_message(target),
                    quantity=quantity,
                )
                for sku, source, target, quantity in items
            ],
            ignore_availability_check=ignore,
            request_id=self.request_id(data),
        )

        def predict(model: Ledger) -> Callable[[Any], None]:
            booking = self.live(model, reservation_id)
            # Every source lets go before any destination is checked.
            for sku, source, _, quantity in items:
                self.require_open(booking, reservation_id, sku, source, quantity)
                model.transfer_out(reservation_id, sku, source, quantity)
            for sku, _, target, quantity in items:
                if not ignore:
                    available = model.available_to_order(sku, target)
                    if quantity > available:
                        raise Refused(
                            FAILED_PRECONDITION,
                            "INSUFFICIENT_STOCK",
                            sku=sku,
                            place=place_name(target),
                            requested=quantity,
                            available=available,
                        )
                model.reserve(reservation_id, sku, target, quantity)
            booking.update_us = self.now
            return expect_reservation(booking, reservation_id)

        self.exempt = self.exempt or ignore
        self.call("TransferReservation", request, predict)

    def line_items(
        self, data: st.DataObject, booking: Booking | None, *, locations_only: bool = False
    ) -> list[tuple[str, Place, int]]:
        items: list[tuple[str, Place, int]] = []
        for _ in range(data.draw(st.integers(1, 2), label="items")):
            sku, place, quantity = self.pick_line(data, booking, locations_only=locations_only)
            if all((sku, place) != item[:2] for item in items):
                items.append((sku, place, quantity))
        return items

    @precondition(lambda self: self.model.bookings)
    @rule(data=st.data())
    def fulfill(self, data: st.DataObject) -> None:
        reservation_id = self.pick_reservation(data)
        booking = self.model.bookings.get(reservation_id)
        items = self.line_items(data, booking, locations_only=True)
        request = res.FulfillReservationRequest(
            reservation_id=reservation_id,
            items=[
                res.FulfillItem(sku=sku, place=place_message(place), quantity=quantity)
                for sku, place, quantity in items
            ],
            request_id=self.request_id(data),
        )

        def predict(model: Ledger) -> Callable[[Any], None]:
            booking = self.live(model, reservation_id)
            for sku, place, _ in items:
                if place[0] == GROUP:
                    raise Refused(
                        FAILED_PRECONDITION,
                        "FULFILL_REQUIRES_LOCATION",
                        sku=sku,
                        place=place_name(place),
                    )
            for sku, place, quantity in items:
                self.require_open(booking, reservation_id, sku, place, quantity)
                level = model.level(place[1], sku)
                if quantity > level.on_hand:
                    raise Refused(
                        FAILED_PRECONDITION,
                        "INSUFFICIENT_ON_HAND",
                        sku=sku,
                        place=place_name(place),
                        requested=quantity,
                        available=level.on_hand,
                    )
                model.fulfill(reservation_id, sku, place[1], quantity)
            booking.update_us = self.now
            return expect_reservation(booking, reservation_id)

        self.call("FulfillReservation", request, predict)

    @precondition(lambda self: self.model.bookings)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        reservation_id = self.pick_reservation(data)
        release_all = data.draw(st.integers(0, 3), label="release all") == 0
        items = (
            [] if release_all else self.line_items(data, self.model.bookings.get(reservation_id))
        )
        request = res.ReleaseReservationRequest(
            reservation_id=reservation_id,
            items=[
                res.ReleaseItem(sku=sku, place=place_message(place), quantity=quantity)
                for sku, place, quantity in items
            ],
            release_all=release_all,
            request_id=self.request_id(data),
        )

        def predict(model: Ledger) -> Callable[[Any], None]:
            booking = model.bookings.get(reservation_id)
            if booking is None:
                raise Refused(NOT_FOUND, "RESERVATION_NOT_FOUND", reservation_id=reservation_id)
            if release_all:
                todo = [
                    (sku, (kind, place_id), line.open)
                    for (sku, kind, place_id), line in sorted(booking.lines.items())
                    if line.open
                ]
            else:
                if booking.expired:
                    raise Refused(
                        FAILED_PRECONDITION, "RESERVATION_EXPIRED", reservation_id=reservation_id
                    )
                todo = items
            for sku, place, quantity in todo:
                self.require_open(booking, reservation_id, sku, place, quantity)
                model.release(reservation_id, sku, place, quantity)
            if todo:
                booking.update_us = self.now
            return expect_reservation(booking, reservation_id)

        self.call("ReleaseReservation", request, predict)

    @precondition(lambda self: self.model.bookings)
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        """A cart that changes: set lines' open quantities (a new line, 0, up, down) and the
        TTL."""
        reservation_id = self.pick_reservation(data)
        booking = self.model.bookings.get(reservation_id)
        targets: list[tuple[str, Place, int]] = []
        for _ in range(data.draw(st.integers(0, 3), label="update items")):
            sku, place, _quantity = self.pick_line(data, booking)
            if all((sku, place) != item[:2] for item in targets):
                targets.append((sku, place, data.draw(st.integers(0, 12), label="open")))
        ttl = data.draw(st.sampled_from(["keep", "clear", "set"]), label="ttl")
        ttl_s = data.draw(st.integers(5, 120), label="ttl seconds")
        if not targets and ttl == "keep":
            ttl = "set"
        request = res.UpdateReservationRequest(
            reservation_id=reservation_id,
            items=[
                res.UpdateItem(sku=sku, place=place_message(place), open_quantity=units)
                for sku, place, units in targets
            ],
            clear_ttl=ttl == "clear",
            request_id=self.request_id(data),
        )
        if ttl == "set":
            request.ttl.CopyFrom(duration_pb2.Duration(seconds=ttl_s))

        def predict(model: Ledger) -> Callable[[Any], None]:
            booking = self.live(model, reservation_id)
            if booking.state == CLOSED:
                raise Refused(
                    FAILED_PRECONDITION, "RESERVATION_CLOSED", reservation_id=reservation_id
                )
            changes = []
            for sku, place, units in targets:
                line = booking.lines.get((sku, *place))
                changes.append((sku, place, units - (line.open if line else 0)))
            for sku, place, change in changes:
                if change < 0:
                    model.release(reservation_id, sku, place, -change)
            for sku, place, change in changes:
                if change > 0:
                    available = model.available_to_order(sku, place)
                    if change > available:
                        raise Refused(
                            FAILED_PRECONDITION,
                            "INSUFFICIENT_STOCK",
                            sku=sku,
                            place=place_name(place),
                            requested=change,
                            available=available,
                        )
                    model.reserve(reservation_id, sku, place, change)
            if ttl == "clear":
                booking.expire_us = None
            elif ttl == "set":
                booking.expire_us = self.now + ttl_s * SECOND
            booking.update_us = self.now
            return expect_reservation(booking, reservation_id)

        self.call("UpdateReservation", request, predict)

    @precondition(lambda self: self.model.bookings)
    @rule(data=st.data())
    def batch(self, data: st.DataObject) -> None:
        """Batch*Reservations: each request as its own RPC would go, in order, on what the
        ones before it left; a refused one leaves no trace (partial success), or refuses the
        whole batch, naming it (all_or_nothing)."""
        kind = data.draw(st.sampled_from(["Create", "Transfer", "Fulfill", "Release"]))
        self.gathered = []
        try:
            for _ in range(data.draw(st.integers(1, 3), label="requests")):
                if kind == "Create":
                    self.create(self.fresh("r"), data.draw(CREATE_ITEMS, label="items"))
                else:
                    getattr(self, kind.lower())(data)
        finally:
            gathered, self.gathered = self.gathered, None
        all_or_nothing = data.draw(st.booleans(), label="all_or_nothing")
        method = f"Batch{kind}Reservations"
        request = getattr(res, f"{method}Request")(
            requests=[one for _, one, _ in gathered],
            all_or_nothing=all_or_nothing,
            request_id=self.request_id(data),
        )

        def predict(model: Ledger) -> Callable[[Any], None]:
            expected: list[Callable[[Any], None] | Refused] = []
            for index, (_, _, one) in enumerate(gathered):
                saved = copy.deepcopy(model)
                try:
                    expected.append(one(model))
                except Refused as refusal:
                    if all_or_nothing:
                        refusal.metadata["request_index"] = str(index)
                        raise
                    model.restore(saved)
                    expected.append(refusal)

            def check(response: Any) -> None:
                assert len(response.results) == len(expected)
                for result, want in zip(response.results, expected, strict=True):
                    if isinstance(want, Refused):
                        code, reason, metadata = error_of(result.error)
                        assert (code, reason) == (want.code.value[0], want.reason), result
                        for key, value in want.metadata.items():
                            assert metadata.get(key) == value, (key, metadata, want.metadata)
                    else:
                        want(result.response)

            return check

        self.call(method, request, predict)

    @rule(seconds=st.integers(1, 90), sweep=st.integers(0, 3))
    def advance_clock(self, seconds: int, sweep: int) -> None:
        """Time passes; usually the sweeper then runs (sometimes not yet: due reservations
        can no longer be fulfilled or transferred even before they are swept)."""
        self.now += seconds * SECOND
        if not sweep:
            return
        due = [rid for rid, booking in self.model.bookings.items() if booking.due(self.now)]
        assert expire_due(self.store, self.ledger) == len(due)
        for reservation_id in due:
            self.model.expire(reservation_id)
            self.model.bookings[reservation_id].update_us = self.now

    @precondition(lambda self: self.model.bookings)
    @rule(data=st.data())
    def read_reservations(self, data: st.DataObject) -> None:
        """GetReservation and ListReservations (paged, filtered by state) agree with the model."""
        reservation_id = data.draw(st.sampled_from(sorted(self.model.bookings)), label="get")
        got = self.reservations.GetReservation(
            res.GetReservationRequest(reservation_id=reservation_id)
        )
        assert_reservation(got.reservation, self.model.bookings[reservation_id], reservation_id)
        state = data.draw(st.sampled_from([0, 1, 2, 3]), label="state filter")
        page_size = data.draw(st.integers(1, 4), label="page size")
        listed, token = [], ""
        while True:
            page = self.reservations.ListReservations(
                res.ListReservationsRequest(page_size=page_size, page_token=token, state=state)
            )
            assert len(page.reservations) <= page_size
            for message in page.reservations:
                assert_reservation(message, self.model.bookings[message.id], message.id)
            listed += [message.id for message in page.reservations]
            token = page.next_page_token
            if not token:
                break
        expected = sorted(
            rid for rid, booking in self.model.bookings.items() if state in (0, booking.state)
        )
        assert listed == expected

    # --- idempotency ---------------------------------------------------------------------

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def replay_request(self, data: st.DataObject) -> None:
        """A retry with the same request_id returns the first response and changes nothing,
        whatever happened in between."""
        method, request, first = data.draw(st.sampled_from(self.history), label="replayed")
        before = dump(self.db)
        assert self.stub(method)(request) == first
        assert dump(self.db) == before

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def reuse_request_id(self, data: st.DataObject) -> None:
        """The same request_id with a different body (or for another method) is refused."""
        method, request, _ = data.draw(st.sampled_from(self.history), label="reused")
        changed = type(request)()
        changed.CopyFrom(request)
        if method == "SetStock":
            changed.levels[0].on_hand += 1
        elif method == "AdjustStock":
            changed.adjustments[0].reason = "a different body"
        elif method == "CreateReservation":
            changed.external_ref = "a different body"
        elif method == "ReleaseReservation" and request.release_all:
            changed = None
        elif method.startswith("Batch"):
            changed.all_or_nothing = not request.all_or_nothing
        elif method == "UpdateReservation":
            # It may name no items (only a TTL change): a different TTL is another body too.
            if request.items:
                changed.items[0].open_quantity += 1
            elif request.clear_ttl:
                changed.clear_ttl = False
                changed.ttl.CopyFrom(duration_pb2.Duration(seconds=60))
            else:
                changed.ttl.seconds += 1
        else:
            changed.items[0].quantity += 1
        if changed is None or data.draw(st.booleans(), label="other method"):
            method = "AdjustStock"
            changed = inv.AdjustStockRequest(
                adjustments=[
                    inv.StockAdjustment(
                        location_id="loc-a", sku="sku-1", on_hand_delta=1, reason="reused id"
                    )
                ],
                request_id=request.request_id,
            )
        before = dump(self.db)
        with_id = request.request_id
        try:
            self.stub(method)(changed)
        except grpc.RpcError as error:
            got = failure(error)
        else:
            raise AssertionError(f"request_id {with_id} reused for a different body was accepted")
        assert (got.code, got.reason) == (ALREADY_EXISTS, "REQUEST_ID_REUSED")
        assert got.metadata["request_id"] == with_id
        assert dump(self.db) == before

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def ledger_is_consistent(self) -> None:
        db = read_database(self.db, dict(GROUPS))
        self.check_counters(db)
        self.check_against_model(db)
        self.check_coverage(db)
        self.check_availability(db)
        self.checks += 1

    def check_counters(self, db: Ledger) -> None:
        held = db.open_at()
        for booking in db.bookings.values():
            for key, line in booking.lines.items():
                assert min(line.quantity, line.fulfilled, line.released, line.transferred_out) >= 0
                assert line.open >= 0, (key, line)
            if booking.state == EXPIRED:
                assert not any(line.open for line in booking.lines.values())
        for (location, sku), level in db.levels.items():
            assert level.on_hand >= 0
            assert db.stored_reserved[(location, sku)] == held.get((sku, LOCATION, location), 0)
        for (sku, kind, place_id), units in held.items():
            if kind == LOCATION:
                assert units == 0 or (place_id, sku) in db.levels, (sku, place_id)
            else:
                assert db.stored_group_reserved.get((place_id, sku), 0) == units, (sku, place_id)
        for (group, sku), units in db.stored_group_reserved.items():
            assert units == held.get((sku, GROUP, group), 0) > 0

    def check_against_model(self, db: Ledger) -> None:
        assert db.bookings == self.model.bookings
        for key in set(db.levels) | set(self.model.levels):
            assert db.level(*key) == self.model.level(*key), key

    def check_coverage(self, db: Ledger) -> None:
        """Hall's condition for every SKU's open group demand; after a stock decrease or an
        unchecked transfer the uncovered amount may grow, but no other operation may grow it."""
        for sku in SKUS:
            deficit = db.sku_state(sku).deficit()
            assert deficit >= 0
            if not self.exempt:
                assert deficit <= self.deficits[sku], (sku, deficit, self.deficits[sku])
            self.deficits[sku] = deficit
        self.exempt = False

    def check_availability(self, db: Ledger) -> None:
        everything = self.inventory.GetAvailability(
            inv.GetAvailabilityRequest(
                skus=list(SKUS), location_ids=list(LOCATIONS), location_group_ids=list(GROUPS)
            )
        ).records
        assert len(everything) == len(PLACES) * len(SKUS)
        states = {sku: db.sku_state(sku) for sku in SKUS}
        held = db.open_at()
        by_place = {}
        for record in everything:
            place = place_of(record.place)
            by_place[(place, record.sku)] = record
            self.check_record(record, place, db, states[record.sku], held)
        self.check_change_log(everything)
        # One place on its own (rotating) reports what it reports among all the others.
        place = PLACES[self.checks % len(PLACES)]
        kind, place_id = place
        alone = self.inventory.GetAvailability(
            inv.GetAvailabilityRequest(
                skus=list(SKUS),
                location_ids=[place_id] if kind == LOCATION else [],
                location_group_ids=[place_id] if kind == GROUP else [],
            )
        ).records
        for record in alone:
            assert record == by_place[(place, record.sku)], (place, record.sku)

    def check_change_log(self, everything: Any) -> None:
        """Folds the entries logged since the last check into the latest-value table, which
        must then equal GetAvailability everywhere."""
        rows = self.db.execute(
            "SELECT seq, sku, place_kind, place_id, present, on_hand, reserved, group_reserved,"
            " safety_stock, futures_total, atf, ato, effective_us FROM availability_changes"
            " WHERE seq > ? ORDER BY seq",
            (self.feed_seq,),
        ).fetchall()
        for seq, sku, kind, place_id, *values in rows:
            assert seq > self.feed_seq
            self.feed_seq = seq
            self.feed[(sku, LOCATION if kind == 1 else GROUP, place_id)] = (
                bool(values[0]),
                *values[1:],
            )
        for record in everything:
            kind, place_id = place_of(record.place)
            effective = micros(record.effective_time) if record.HasField("effective_time") else None
            expected = (
                record.exists,
                record.on_hand,
                record.reserved,
                record.group_reserved,
                record.safety_stock,
                record.futures_total,
                record.available_to_fulfill,
                record.available_to_order,
                effective,
            )
            assert self.feed[(record.sku, kind, place_id)] == expected, (record.sku, kind, place_id)

    def check_record(
        self, record: inv.AvailabilityRecord, place: Place, db: Ledger, state: Any, held: Any
    ) -> None:
        sku = record.sku
        kind, place_id = place
        members = (place_id,) if kind == LOCATION else GROUPS[place_id]
        levels = [db.level(location, sku) for location in members]
        group_reserved = held.get((sku, GROUP, place_id), 0) if kind == GROUP else 0
        futures = sorted(
            (future for level in levels for future in level.futures),
            key=lambda f: (f[1] is None, f[1] or 0),
        )
        total_futures = sum(quantity for quantity, _ in futures)
        if kind == GROUP:  # summed per expected time, the earliest 10 shown
            per_time: dict[int | None, int] = {}
            for quantity, expected in futures:
                per_time[expected] = per_time.get(expected, 0) + quantity
            futures = sorted(
                ((quantity, expected) for expected, quantity in per_time.items()),
                key=lambda f: (f[1] is None, f[1] or 0),
            )[:10]
        effective = [level.effective_us for level in levels if level.effective_us is not None]
        got_futures = [
            (f.quantity, micros(f.expected_time) if f.HasField("expected_time") else None)
            for f in record.futures
        ]
        expected_atf = (
            state.location_atf(place_id) if kind == LOCATION else state.group_atf(place_id)
        )
        expected_ato = (
            state.location_ato(place_id) if kind == LOCATION else state.group_ato(place_id)
        )
        what = (place, sku)
        assert record.on_hand == sum(level.on_hand for level in levels), what
        assert record.safety_stock == sum(level.safety_stock for level in levels), what
        assert record.reserved == group_reserved + sum(
            held.get((sku, LOCATION, location), 0) for location in members
        ), what
        assert record.group_reserved == group_reserved, what
        assert record.futures_total == total_futures, what
        assert sorted(got_futures, key=str) == sorted(futures, key=str), what
        assert [f[1] is None for f in got_futures] == [f[1] is None for f in futures], what
        assert [f[1] for f in got_futures if f[1] is not None] == sorted(
            f[1] for f in futures if f[1] is not None
        ), what
        assert record.exists == bool(effective), what
        if effective:
            assert micros(record.effective_time) == max(effective), what
        else:
            assert not record.HasField("effective_time"), what
        assert record.available_to_order == expected_ato, (what, record, expected_ato)
        assert record.available_to_fulfill == expected_atf, (what, record, expected_atf)
        assert 0 <= record.available_to_fulfill <= record.available_to_order
        if kind == GROUP:
            # Whatever the group reports as shippable now really is: that many more units can
            # be reserved at the group and served from free stock on hand, with every existing
            # reservation still covered.
            assert record.available_to_fulfill <= state.group_shippable_now(place_id), what


LedgerMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=35,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# A failure shrinks slowly (every candidate runs a real server); let Hypothesis' own five-minute
# shrink limit end it and print the example before pytest-timeout would.
TestLedgerStateMachine = pytest.mark.timeout(900)(LedgerMachine.TestCase)
