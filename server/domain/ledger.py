"""The inventory ledger: the rules of every operation, applied inside one unit of work.

Each method reads what it needs through the storage contract, checks the rules of DESIGN.md
sections 2-3, raises a DomainError before writing anything if one fails, and writes its changes
through the same unit of work. Atomicity comes from the unit of work: an error rolls it back.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from server.domain import commands, history
from server.domain.changes import (
    RegroupedAvailability,
    ResummedAvailability,
    changed_availability,
)
from server.domain.changes import cost as changes_cost
from server.domain.commands import Availability, ReservedItem
from server.domain.coverage import LocationCoverage
from server.domain.errors import AlreadyExists, FailedPrecondition, NotFound, UnlockedSkus
from server.domain.history import MovementKind
from server.domain.model import (
    MAX_QUANTITY,
    Future,
    Location,
    LocationGroup,
    Place,
    Reservation,
    ReservationLine,
    ReservationState,
    StockRecord,
)
from server.domain.port import UnitOfWork
from server.domain.position import SkuPosition

MAX_RESERVATION_LINES = 1000
"""Lines (sku, place) one reservation may hold: transfers add lines, and a reservation must stay
well inside one 4 MiB message."""


LOOP_LOGGING_BUDGET = 64
"""Max-flow solves (changes.cost) a write may spend logging its changes on the event loop; a
write that needs more runs on a worker thread, so that it holds up no other caller."""


def wall_clock_us() -> int:
    return time.time_ns() // 1000


def time_ordered_uuid() -> uuid.UUID:
    """A UUIDv7 (RFC 9562: 48-bit Unix milliseconds, then random bits). Generated reservation
    ids then grow over time, so new rows land at the end of the primary-key index instead of
    on a random page (Python 3.11's uuid module has no uuid7)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return uuid.UUID(int=value)


class Shippable(NamedTuple):
    """What one SKU can ship: `units` (ATF > 0) at the locations asked about whose positions
    are `columns`."""

    columns: npt.NDArray[np.intp]
    units: npt.NDArray[np.int64]

    def by_location(self, location_ids: Sequence[str]) -> dict[str, int]:
        return {
            location_ids[j]: int(units) for j, units in zip(self.columns, self.units, strict=True)
        }


class Ledger:
    def __init__(
        self,
        clock: Callable[[], int] = wall_clock_us,
        new_id: Callable[[], str] = lambda: str(time_ordered_uuid()),
        *,
        log_changes: bool = True,
        record_history: bool = True,
    ) -> None:
        """`log_changes`: every stock and reservation write appends the availability records
        it changed to the change log, in its own transaction (server/domain/changes.py).
        `record_history`: every write appends its stock movements (server/domain/history.py)."""
        self.clock = clock
        self.new_id = new_id
        self.log_changes = log_changes
        self.record_history = record_history

    # --- network -------------------------------------------------------------------------

    def upsert_locations(self, uow: UnitOfWork, locations: Sequence[Location]) -> list[Location]:
        uow.put_locations(locations)
        self._record(
            uow,
            history.of_network(
                MovementKind.LOCATION_CHANGED, (Place.location(loc.id) for loc in locations)
            ),
        )
        return list(locations)

    def upsert_groups(
        self, uow: UnitOfWork, groups: Sequence[LocationGroup]
    ) -> list[LocationGroup]:
        """Replaces groups; refuses to drop members whose stock open group reservations need."""
        wanted = {location for group in groups for location in group.location_ids}
        _require_locations(uow, wanted)
        self._regroup(uow, groups, MovementKind.GROUP_CHANGED)
        return list(groups)

    def _regroup(
        self, uow: UnitOfWork, groups: Sequence[LocationGroup], kind: MovementKind
    ) -> None:
        replaced = {group.id: group.location_ids for group in groups}
        _require_coverage(uow, uow.skus_reserved_at_groups(list(replaced)), replaced)
        regrouped = (
            RegroupedAvailability(uow, groups, _positions_at, _availability)
            if self.log_changes
            else None
        )
        uow.put_groups(groups)
        self._record(uow, history.of_network(kind, (Place.group(group.id) for group in groups)))
        if regrouped is not None and (changes := regrouped.changed(uow)):
            uow.append_changes(changes, self.clock())

    # --- deletion (OCI's Is_Deleted) -----------------------------------------------------

    def delete_locations(self, uow: UnitOfWork, location_ids: Sequence[str]) -> int:
        """Deletes locations with their stock records and group memberships; returns how many
        records went. Refused while reservations hold units there or need their stock."""
        _require_locations(uow, location_ids)
        _require_unheld(uow, [Place.location(location_id) for location_id in location_ids])
        gone = set(location_ids)
        shrunk = [
            LocationGroup(
                group.id,
                group.display_name,
                tuple(member for member in group.location_ids if member not in gone),
                group.enabled,
            )
            for group in uow.groups(uow.groups_holding(gone)).values()
        ]
        if shrunk:
            self._regroup(uow, shrunk, MovementKind.GROUP_CHANGED)
        keys = {(sku, location_id) for sku in uow.skus_at(gone) for location_id in gone}
        stored = uow.stock_of(keys)
        self._delete_stock(uow, stored)
        uow.delete_locations(gone)
        self._record(
            uow,
            history.of_network(MovementKind.LOCATION_DELETED, map(Place.location, location_ids)),
        )
        return len(stored)

    def delete_groups(self, uow: UnitOfWork, group_ids: Sequence[str]) -> None:
        """Deletes groups (their members stay). Refused while reservations are held at them."""
        places = [Place.group(group_id) for group_id in group_ids]
        groups = require_places(uow, places)
        _require_unheld(uow, places)
        # Emptied first, so that the change log says what each group's records become.
        emptied = [
            LocationGroup(group.id, group.display_name, (), group.enabled)
            for group in groups.values()
        ]
        self._regroup(uow, emptied, MovementKind.GROUP_DELETED)
        uow.delete_groups(group_ids)

    def delete_stock(self, uow: UnitOfWork, keys: Sequence[tuple[str, str]]) -> None:
        """Deletes (sku, location id) records. Refused while units are reserved there or open
        group reservations need their stock."""
        stored = uow.stock_of(set(keys))
        for sku, location_id in keys:
            if (sku, location_id) not in stored:
                raise NotFound(
                    "STOCK_NOT_FOUND",
                    f"{sku} has no stock record at {location_id}",
                    sku=sku,
                    location=location_id,
                )
        for (sku, location_id), record in sorted(stored.items()):
            if record.reserved:
                _require_unheld(uow, [Place.location(location_id)], sku)
        _require_coverage(uow, {sku for sku, _ in stored}, emptied=stored)
        self._delete_stock(uow, stored)

    def _delete_stock(self, uow: UnitOfWork, stored: Mapping[tuple[str, str], StockRecord]) -> None:
        if not stored:
            return
        emptied = {key: StockRecord(*key) for key in stored}
        if self.log_changes:
            self._log_stock(uow, emptied)
        uow.delete_stock(list(stored))
        self._record(uow, history.of_records(MovementKind.STOCK_DELETED, stored, emptied))

    # --- stock ---------------------------------------------------------------------------

    def set_stock(
        self, uow: UnitOfWork, levels: Sequence[commands.StockLevel]
    ) -> list[commands.StockUpdateResult]:
        """Absolute levels, with the groups each record is excluded from; an update older than
        the stored effective time is skipped."""
        _require_locations(uow, {level.location_id for level in levels})
        now = self.clock()
        stored = uow.stock_of({(level.sku, level.location_id) for level in levels})
        named = {level.sku for level in levels if level.excluded_groups is not None}
        excluded = uow.exclusions(named) if named else {}
        reexcluded: dict[tuple[str, str], frozenset[str]] = {}
        changed: dict[tuple[str, str], StockRecord] = {}
        results = []
        for level in levels:  # validation refused duplicate (sku, location) pairs
            key = (level.sku, level.location_id)
            current = stored.get(key)
            effective = now if level.effective_us is None else level.effective_us
            last = current.effective_us if current else None
            if last is not None and effective < last:
                results.append(
                    commands.StockUpdateResult(level.location_id, level.sku, False, last)
                )
                continue
            changed[key] = StockRecord(
                level.sku,
                level.location_id,
                on_hand=level.on_hand,
                safety_stock=level.safety_stock,
                futures=level.futures,
                reserved=current.reserved if current else 0,
                effective_us=effective,
            )
            results.append(
                commands.StockUpdateResult(level.location_id, level.sku, True, effective)
            )
            if level.excluded_groups is not None and level.excluded_groups != (
                excluded.get(level.sku, {}).get(level.location_id, frozenset())
            ):
                reexcluded[key] = level.excluded_groups
        require_places(uow, {Place.group(g) for groups in reexcluded.values() for g in groups})
        reclassed = {sku for sku, _ in reexcluded}
        if reclassed:
            _require_coverage(uow, reclassed, reexcluded=reexcluded)
        resummed = (
            ResummedAvailability(uow, reexcluded, _positions_at, _availability)
            if self.log_changes and reexcluded
            else None
        )
        if self.log_changes and changed:
            self._log_stock(uow, {key: r for key, r in changed.items() if key[0] not in reclassed})
        _put_stock(uow, stored, changed, reclassed)
        if reexcluded:
            uow.put_exclusions(reexcluded)
            if resummed is not None and (changes := resummed.changed(uow)):
                uow.append_changes(changes, self.clock())
        self._record(uow, history.of_records(MovementKind.STOCK_SET, stored, changed))
        return results

    def adjust_stock(
        self, uow: UnitOfWork, adjustments: Sequence[commands.StockAdjustment]
    ) -> list[commands.AdjustmentResult]:
        """On-hand deltas. On hand stops at 0; a record first created by a delta gets
        effective time 0 so that any absolute level replaces it."""
        _require_locations(uow, {adjustment.location_id for adjustment in adjustments})
        stored = uow.stock_of({(item.sku, item.location_id) for item in adjustments})
        changed: dict[tuple[str, str], StockRecord] = {}
        results = []
        for adjustment in adjustments:  # validation refused duplicate (sku, location) pairs
            key = (adjustment.sku, adjustment.location_id)
            current = stored.get(key) or StockRecord(adjustment.sku, adjustment.location_id)
            on_hand = max(0, current.on_hand + adjustment.on_hand_delta)
            if on_hand > MAX_QUANTITY:
                raise FailedPrecondition(
                    "QUANTITY_TOO_LARGE",
                    f"on hand of {adjustment.sku} at {adjustment.location_id} would exceed "
                    f"{MAX_QUANTITY}",
                    sku=adjustment.sku,
                    location=adjustment.location_id,
                    on_hand=current.on_hand,
                    delta=adjustment.on_hand_delta,
                )
            changed[key] = StockRecord(
                current.sku,
                current.location_id,
                on_hand=on_hand,
                safety_stock=current.safety_stock,
                futures=current.futures,
                reserved=current.reserved,
                effective_us=0 if current.effective_us is None else current.effective_us,
            )
            results.append(
                commands.AdjustmentResult(
                    adjustment.location_id, adjustment.sku, on_hand, on_hand - current.on_hand
                )
            )
        if self.log_changes and changed:
            self._log_stock(uow, changed)
        _put_stock(uow, stored, changed)
        reasons = {(item.sku, item.location_id): item.reason for item in adjustments}
        self._record(uow, history.of_records(MovementKind.STOCK_ADJUSTED, stored, changed, reasons))
        return results

    def availability(
        self, uow: UnitOfWork, skus: Sequence[str], places: Sequence[Place]
    ) -> list[Availability]:
        """For each place, for each SKU (request order), the quantities of DESIGN.md section 2."""
        require_places(uow, places)
        positions = _load_positions(uow, {sku: set(places) for sku in skus})
        return [_availability(positions[sku], place) for place in places for sku in skus]

    def shippable(
        self,
        uow: UnitOfWork,
        skus: Sequence[str],
        location_ids: Sequence[str],
        *,
        releasing: Reservation | None = None,
        group_id: str = "",
    ) -> dict[str, Shippable]:
        """ATF per SKU at the locations given that can ship some, as routing may use it. The
        group lines of `releasing` (the order being routed) count as released, so the order
        does not compete with itself. Routing over group `group_id`, records excluded from it
        ship nothing. Read as arrays, so that its cost grows with the SKUs' records where
        stock is free, not with SKUs x locations."""
        held = [
            line
            for line in (releasing.sorted_lines() if releasing else [])
            if line.open and not line.place.is_location and line.sku in skus
        ]
        places_by_sku: dict[str, set[Place]] = {sku: set() for sku in skus}
        for line in held:
            places_by_sku[line.sku].add(line.place)
        require_places(uow, {line.place for line in held})
        # No records: only what group coverage needs (totals per class, where groups matter).
        positions = _load_positions(uow, places_by_sku)
        for line in held:
            positions[line.sku].hold(line.place, -line.open)
        free = uow.free_stock(skus)
        numbering = uow.location_numbering()
        column_of = numbering.columns(location_ids)
        excluded = uow.exclusions(skus, group_id) if group_id else {}
        shippable = {}
        for sku in skus:
            stock = free[sku]
            columns = column_of[stock.locations]
            units = positions[sku].locations_available_to_fulfill(numbering, *stock)
            ships = (columns >= 0) & (units > 0)
            if sku in excluded:
                ships &= ~np.isin(stock.locations, numbering.numbers(list(excluded[sku])))
            shippable[sku] = Shippable(columns[ships], units[ships])
        return shippable

    # --- reservations --------------------------------------------------------------------

    def create_reservation(
        self, uow: UnitOfWork, command: commands.CreateReservation
    ) -> tuple[Reservation, list[ReservedItem]]:
        # A generated id is new by construction (a UUID); a chosen one may already be taken.
        reservation_id = command.reservation_id or self.new_id()
        if command.reservation_id and uow.reservation(reservation_id) is not None:
            raise AlreadyExists(
                "RESERVATION_ALREADY_EXISTS",
                f"reservation {reservation_id} already exists",
                reservation_id=reservation_id,
            )
        positions = self._positions(uow, command.items)
        require_enabled(uow, (item.place for item in command.items))
        now = self.clock()
        reservation = Reservation(
            reservation_id,
            command.external_ref,
            create_us=now,
            update_us=now,
            expire_us=None if command.ttl_us is None else now + command.ttl_us,
        )
        outcomes = []
        for item in command.items:
            position = positions[item.sku]
            available = position.available_to_order(item.place)
            if item.quantity > available and not command.allow_partial:
                raise _insufficient_stock(item.sku, item.place, item.quantity, available)
            granted = min(item.quantity, available)
            if granted:
                position.hold(item.place, granted)
                reservation.line(item.sku, item.place).quantity += granted
            outcomes.append(ReservedItem(item.sku, item.place, item.quantity, granted))
        if not reservation.lines:
            first = command.items[0]
            raise _insufficient_stock(first.sku, first.place, first.quantity, 0)
        uow.put_reservation(reservation)
        self._flush(uow, positions)
        self._record(
            uow, history.of_positions(MovementKind.RESERVED, reservation.id, positions.values())
        )
        return reservation, outcomes

    def transfer(self, uow: UnitOfWork, command: commands.TransferReservation) -> Reservation:
        """Moves open quantity between places; the destination must have it available unless
        the caller says to skip the check. Physical stock does not move."""
        reservation = self.live_reservation(uow, command.reservation_id)
        positions = self._positions(
            uow,
            [
                commands.Item(item.sku, place, item.quantity)
                for item in command.items
                for place in (item.from_place, item.to_place)
            ],
        )
        require_enabled(uow, (item.to_place for item in command.items))
        # Every source lets go before any destination is checked: the destinations see the
        # whole moving quantity released, as they will once the transfer commits.
        for item in command.items:
            source = _open_line(reservation, item.sku, item.from_place, item.quantity)
            positions[item.sku].hold(item.from_place, -item.quantity)
            source.transferred_out += item.quantity
        for item in command.items:
            position = positions[item.sku]
            if not command.ignore_availability_check:
                available = position.available_to_order(item.to_place)
                if item.quantity > available:
                    raise _insufficient_stock(item.sku, item.to_place, item.quantity, available)
            position.hold(item.to_place, item.quantity)
            reservation.line(item.sku, item.to_place).quantity += item.quantity
        _within_line_limit(reservation)
        self._save(uow, reservation, positions, MovementKind.TRANSFERRED)
        return reservation

    def fulfill(self, uow: UnitOfWork, command: commands.FulfillReservation) -> Reservation:
        """Ships from locations: out of the line, out of reserved and out of on hand there."""
        reservation = self.live_reservation(uow, command.reservation_id)
        for item in command.items:
            if not item.place.is_location:
                raise FailedPrecondition(
                    "FULFILL_REQUIRES_LOCATION",
                    f"{item.sku} is held by group {item.place.id}: transfer it to a location "
                    "before fulfilling",
                    sku=item.sku,
                    place=item.place,
                )
        positions = self._positions(uow, command.items)
        for item in command.items:
            line = _open_line(reservation, item.sku, item.place, item.quantity)
            on_hand = positions[item.sku].record(item.place.id).on_hand
            if item.quantity > on_hand:
                raise FailedPrecondition(
                    "INSUFFICIENT_ON_HAND",
                    f"cannot ship {item.quantity} of {item.sku} from {item.place.id}: "
                    f"on hand is {on_hand}; set the stock first",
                    sku=item.sku,
                    place=item.place,
                    requested=item.quantity,
                    available=on_hand,
                )
            positions[item.sku].ship(item.place.id, item.quantity)
            line.fulfilled += item.quantity
        self._save(uow, reservation, positions, MovementKind.FULFILLED)
        return reservation

    def release(
        self,
        uow: UnitOfWork,
        command: commands.ReleaseReservation,
        locked: Collection[str] | None = None,
    ) -> Reservation:
        """Gives open quantity back. Releasing all of an expired or closed reservation is a
        successful no-op, so cancellations can be retried freely. `locked`: the SKUs the unit
        of work locked, read before it for a `release_all` (see _require_locked)."""
        reservation = _find_reservation(uow, command.reservation_id)
        if command.release_all:
            _require_locked(reservation, locked)
            items = [
                commands.Item(line.sku, line.place, line.open)
                for line in reservation.sorted_lines()
                if line.open
            ]
            if not items:
                return reservation
        else:
            if reservation.expired:
                raise _expired(reservation)
            items = list(command.items)
        self._give_back(uow, reservation, items, MovementKind.RELEASED)
        return reservation

    def update(self, uow: UnitOfWork, command: commands.UpdateReservation) -> Reservation:
        """A changing cart: sets the open quantity of the lines named (reserving or releasing
        the difference) and resets or clears the expiry. Releases go first, so units let go at
        one place can be reserved at another in the same call; each increase needs ATO as a
        creation does. Fulfilled, released and transferred units are history and never change."""
        reservation = self.live_reservation(uow, command.reservation_id)
        if reservation.state is ReservationState.CLOSED:
            raise FailedPrecondition(
                "RESERVATION_CLOSED",
                f"reservation {reservation.id} has nothing open; create a new reservation",
                reservation_id=reservation.id,
            )
        changes = []
        for item in command.items:
            line = reservation.lines.get((item.sku, item.place))
            changes.append((item, item.quantity - (line.open if line else 0)))
        positions = self._positions(uow, command.items) if command.items else {}
        require_enabled(uow, (item.place for item, change in changes if change > 0))
        for item, change in changes:
            if change < 0:
                positions[item.sku].hold(item.place, change)
                reservation.lines[(item.sku, item.place)].released -= change
        for item, change in changes:
            if change > 0:
                position = positions[item.sku]
                available = position.available_to_order(item.place)
                if change > available:
                    raise _insufficient_stock(item.sku, item.place, change, available)
                position.hold(item.place, change)
                reservation.line(item.sku, item.place).quantity += change
        _within_line_limit(reservation)
        if command.clear_ttl:
            reservation.expire_us = None
        elif command.ttl_us is not None:
            reservation.expire_us = self.clock() + command.ttl_us
        self._save(uow, reservation, positions, MovementKind.RESERVATION_UPDATED)
        return reservation

    def expire(
        self, uow: UnitOfWork, reservation_id: str, locked: Collection[str] | None = None
    ) -> bool:
        """Releases a due reservation's open quantities; False when it is not (or no longer)
        due, e.g. another server expired it first. `locked`: as for `release`."""
        reservation = uow.reservation(reservation_id)
        if reservation is None or not reservation.is_due(self.clock()):
            return False
        _require_locked(reservation, locked)
        items = [
            commands.Item(line.sku, line.place, line.open)
            for line in reservation.sorted_lines()
            if line.open
        ]
        reservation.expired = True
        self._give_back(uow, reservation, items, MovementKind.EXPIRED)
        return True

    def reservation(self, uow: UnitOfWork, reservation_id: str) -> Reservation:
        return _find_reservation(uow, reservation_id)

    def due_reservations(self, uow: UnitOfWork, limit: int) -> list[str]:
        return uow.due_reservations(self.clock(), limit)

    # --- helpers -------------------------------------------------------------------------

    def live_reservation(self, uow: UnitOfWork, reservation_id: str) -> Reservation:
        """The reservation, if it exists and has not expired."""
        reservation = _find_reservation(uow, reservation_id)
        if reservation.expired or reservation.is_due(self.clock()):
            raise _expired(reservation)
        return reservation

    def _positions(self, uow: UnitOfWork, items: Iterable[commands.Item]) -> dict[str, SkuPosition]:
        places_by_sku: dict[str, set[Place]] = defaultdict(set)
        for item in items:
            places_by_sku[item.sku].add(item.place)
        places = {place for places in places_by_sku.values() for place in places}
        require_places(uow, {place for place in places if not place.is_location})
        positions = _load_positions(uow, places_by_sku, grouped_locations=self.log_changes)
        if self.log_changes:
            self._within_budget(uow, positions)
        # A stock record proves its location exists (a foreign key): only locations without
        # one are looked up, which spares the lookup on every ordinary reservation.
        require_places(
            uow,
            {
                place
                for sku, at in places_by_sku.items()
                for place in at
                if place.is_location and place.id not in positions[sku].records
            },
        )
        return positions

    def _give_back(
        self,
        uow: UnitOfWork,
        reservation: Reservation,
        items: Sequence[commands.Item],
        kind: MovementKind,
    ) -> None:
        positions = self._positions(uow, items)
        for item in items:
            line = _open_line(reservation, item.sku, item.place, item.quantity)
            positions[item.sku].hold(item.place, -item.quantity)
            line.released += item.quantity
        self._save(uow, reservation, positions, kind)

    def _save(
        self,
        uow: UnitOfWork,
        reservation: Reservation,
        positions: dict[str, SkuPosition],
        kind: MovementKind,
    ) -> None:
        reservation.update_us = self.clock()
        uow.put_reservation(reservation)
        self._flush(uow, positions)
        self._record(uow, history.of_positions(kind, reservation.id, positions.values()))

    def _record(self, uow: UnitOfWork, movements: Sequence[history.Movement]) -> None:
        if self.record_history and movements:
            uow.append_movements(movements, self.clock(), history.CAUSE.get())

    def _flush(self, uow: UnitOfWork, positions: dict[str, SkuPosition]) -> None:
        _flush(uow, positions)
        if self.log_changes:
            self._log(uow, positions.values())

    def _log(self, uow: UnitOfWork, positions: Iterable[SkuPosition]) -> None:
        changes = [
            record
            for position in positions
            for record in changed_availability(uow, position, _availability)
        ]
        if changes:
            uow.append_changes(changes, self.clock())

    def _within_budget(self, uow: UnitOfWork, positions: Mapping[str, SkuPosition]) -> None:
        """Before any write: a write whose logging would hold the event loop too long runs on
        a worker thread instead."""
        if sum(map(changes_cost, positions.values())) > LOOP_LOGGING_BUDGET:
            uow.slow_work()

    def _log_stock(self, uow: UnitOfWork, changed: Mapping[tuple[str, str], StockRecord]) -> None:
        """Logs what new stock records change, read before they are written."""
        places_by_sku: dict[str, set[Place]] = defaultdict(set)
        for sku, location_id in changed:
            places_by_sku[sku].add(Place.location(location_id))
        positions = _load_positions(uow, places_by_sku, grouped_locations=True)
        self._within_budget(uow, positions)
        for (sku, _location_id), record in changed.items():
            positions[sku].put(record)
        self._log(uow, positions.values())


def _require_coverage(
    uow: UnitOfWork,
    skus: Collection[str],
    replaced: Mapping[str, tuple[str, ...]] | None = None,
    emptied: Collection[tuple[str, str]] = (),
    reexcluded: Mapping[tuple[str, str], frozenset[str]] | None = None,
) -> None:
    """Refuses new memberships (`replaced`, per group), deleted (sku, location) records
    (`emptied`) or records excluded from more groups (`reexcluded`) that would leave open group
    reservations of `skus` without stock."""
    replaced = replaced or {}
    demands = {sku: demand for sku, demand in uow.group_reserved(skus).items() if demand}
    excluded = uow.exclusions(demands) if demands else {}
    for sku, demand in demands.items():
        now = dict(excluded.get(sku, {}))
        then = dict(now)
        now.update({loc: groups for (s, loc), groups in (reexcluded or {}).items() if s == sku})
        members = {gid: group.location_ids for gid, group in uow.groups(list(demand)).items()}
        old = {gid: _counted(gid, ids, then) for gid, ids in members.items()}
        new = {gid: _counted(gid, replaced.get(gid, ids), now) for gid, ids in members.items()}
        locations = {loc for ids in (*old.values(), *new.values()) for loc in ids}
        records = uow.stock([sku], locations)[sku]
        capacity = {
            loc: max(0, records[loc].free_to_order) if loc in records else 0 for loc in locations
        }
        before = LocationCoverage(capacity, demand, old).covered
        for gone_sku, location_id in emptied:
            if gone_sku == sku and location_id in capacity:
                capacity[location_id] = 0
        after = LocationCoverage(capacity, demand, new).covered
        if after < before:
            raise FailedPrecondition(
                "GROUP_RESERVATIONS_UNCOVERABLE",
                f"the change leaves {before - after} units of open group reservations of {sku} "
                "without stock to cover them",
                sku=sku,
                uncovered=before - after,
            )


def _counted(
    group_id: str, members: Sequence[str], excluded: Mapping[str, frozenset[str]]
) -> tuple[str, ...]:
    """The members whose record (of one SKU, whose `excluded` these are) counts in the group."""
    if not excluded:
        return tuple(members)
    return tuple(loc for loc in members if group_id not in excluded.get(loc, ()))


def _require_unheld(uow: UnitOfWork, places: Sequence[Place], sku: str = "") -> None:
    """Refuses to delete places (or a SKU's record at them) that open reservations hold."""
    held = uow.open_reservations_at(places, sku)
    for place in places:
        if place in held:
            where = f"{'location' if place.is_location else 'location group'} {place.id}"
            count = held[place]
            holding = "reservation holds" if count == 1 else "reservations hold"
            of_sku = f" of {sku}" if sku else ""
            raise FailedPrecondition(
                "RESERVATIONS_DEPEND",
                f"{count} open {holding} units{of_sku} at {where}: release, fulfil or transfer "
                "them first",
                **{"location" if place.is_location else "location_group": place.id},
                **({"sku": sku} if sku else {}),
                reservations=held[place],
            )


def _find_reservation(uow: UnitOfWork, reservation_id: str) -> Reservation:
    reservation = uow.reservation(reservation_id)
    if reservation is None:
        raise NotFound(
            "RESERVATION_NOT_FOUND",
            f"reservation {reservation_id} does not exist",
            reservation_id=reservation_id,
        )
    return reservation


def _expired(reservation: Reservation) -> FailedPrecondition:
    return FailedPrecondition(
        "RESERVATION_EXPIRED",
        f"reservation {reservation.id} has expired; its open quantities were released",
        reservation_id=reservation.id,
    )


def _open_line(reservation: Reservation, sku: str, place: Place, quantity: int) -> ReservationLine:
    line = reservation.lines.get((sku, place))
    held = line.open if line else 0
    if line is None or quantity > held:
        raise FailedPrecondition(
            "INSUFFICIENT_RESERVED_QUANTITY",
            f"reservation {reservation.id} holds {held} of {sku} at {place}, not {quantity}",
            reservation_id=reservation.id,
            sku=sku,
            place=place,
            requested=quantity,
            open=held,
        )
    return line


def _require_locked(reservation: Reservation, locked: Collection[str] | None) -> None:
    """Updates add SKUs to reservations, so a caller that read a reservation's SKUs to lock
    them may have read too few: writing stock of a SKU it did not lock would race that SKU's
    writers (PostgreSQL locks per SKU). None: the caller locked what it named itself."""
    if locked is not None and not reservation.skus <= set(locked):
        raise UnlockedSkus(reservation.skus | set(locked))


def _within_line_limit(reservation: Reservation) -> None:
    if len(reservation.lines) > MAX_RESERVATION_LINES:
        raise FailedPrecondition(
            "TOO_MANY_LINES",
            f"reservation {reservation.id} would hold {len(reservation.lines)} lines; at most "
            f"{MAX_RESERVATION_LINES} (sku, place) lines fit one reservation",
            reservation_id=reservation.id,
            lines=len(reservation.lines),
        )


def _insufficient_stock(sku: str, place: Place, requested: int, available: int) -> Exception:
    return FailedPrecondition(
        "INSUFFICIENT_STOCK",
        f"only {available} of {sku} can be reserved at {place}, not {requested}",
        sku=sku,
        place=place,
        requested=requested,
        available=available,
    )


def _require_locations(uow: UnitOfWork, location_ids: Collection[str]) -> None:
    found = uow.known_locations(location_ids)
    for location_id in sorted(location_ids):
        if location_id not in found:
            raise NotFound(
                "LOCATION_NOT_FOUND",
                f"location {location_id} does not exist",
                location=location_id,
            )


def require_enabled(uow: UnitOfWork, places: Iterable[Place]) -> None:
    """Refuses new holds at disabled groups (OCI's IsEnabled false); the places exist."""
    groups = uow.groups({place.id for place in places if not place.is_location})
    for group_id in sorted(groups):
        if not groups[group_id].enabled:
            raise FailedPrecondition(
                "LOCATION_GROUP_DISABLED",
                f"location group {group_id} is disabled: it takes no new reservations or routes",
                location_group=group_id,
            )


def require_places(uow: UnitOfWork, places: Collection[Place]) -> dict[str, LocationGroup]:
    """Checks every place exists; returns the groups among them (with their members)."""
    _require_locations(uow, {place.id for place in places if place.is_location})
    group_ids = {place.id for place in places if not place.is_location}
    groups = uow.groups(group_ids)
    for group_id in sorted(group_ids):
        if group_id not in groups:
            raise NotFound(
                "LOCATION_GROUP_NOT_FOUND",
                f"location group {group_id} does not exist",
                location_group=group_id,
            )
    return groups


def _load_positions(
    uow: UnitOfWork,
    places_by_sku: dict[str, set[Place]],
    *,
    grouped_locations: bool = False,
) -> dict[str, SkuPosition]:
    """Loads, per SKU, the records of the locations named, and, where groups matter (a group is
    named, or holds reservations of the SKU, or, with `grouped_locations`, a location named is
    in a group), the SKU's totals per membership class."""
    demands = uow.group_reserved(places_by_sku)
    named_groups = {
        sku: {place.id for place in places if not place.is_location}
        for sku, places in places_by_sku.items()
    }
    grouped = [sku for sku in places_by_sku if demands[sku] or named_groups[sku]]
    if grouped_locations and len(grouped) < len(places_by_sku):
        class_of = uow.membership_classes().class_of
        grouped = [
            sku
            for sku, places in places_by_sku.items()
            if sku in grouped or any(place.id in class_of for place in places if place.is_location)
        ]
    totals = uow.stock_totals(grouped) if grouped else {}
    pairs = {
        (sku, place.id)
        for sku, places in places_by_sku.items()
        for place in places
        if place.is_location
    }
    locations = {location for _, location in pairs}
    if len(pairs) < len(places_by_sku) * len(locations):  # not every SKU at every location
        records: dict[str, dict[str, StockRecord]] = {sku: {} for sku in places_by_sku}
        for (sku, location), record in uow.stock_of(pairs).items():
            records[sku][location] = record
    else:
        records = uow.stock(places_by_sku, locations)
    positions = {}
    for sku in places_by_sku:
        positions[sku] = SkuPosition(
            sku,
            records[sku],
            demands[sku],
            totals[sku].classes if sku in totals else None,
            totals.get(sku),
            named_groups[sku],
        )
    return positions


def _positions_at(
    uow: UnitOfWork, skus: Sequence[str], groups: Collection[str]
) -> dict[str, SkuPosition]:
    """The SKUs' positions with `groups` asked about (no location records)."""
    return _load_positions(uow, {sku: {Place.group(group) for group in groups} for sku in skus})


def _put_stock(
    uow: UnitOfWork,
    stored: Mapping[tuple[str, str], StockRecord],
    changed: Mapping[tuple[str, str], StockRecord],
    reclassed: Collection[str] = (),
) -> None:
    """Writes stock updates and hands on the totals of the SKUs whose totals are cached, so a
    stock update does not make the next group read sum every member of the SKU again; not of
    `reclassed` SKUs, whose classes change with the write (exclusions)."""
    cached = {
        sku: totals
        for sku, totals in uow.cached_stock_totals({sku for sku, _ in changed}).items()
        if sku not in reclassed
    }
    totals = dict(cached)  # rewritten under the new tokens, changed or not
    for (sku, location_id), record in changed.items():
        k = cached[sku].classes.class_of.get(location_id) if sku in cached else None
        if k is not None:
            if totals[sku] is cached[sku]:
                totals[sku] = cached[sku].copy()
            old = stored.get((sku, location_id)) or StockRecord(sku, location_id)
            totals[sku].replace(k, old, record)
    uow.put_stock(changed.values())
    uow.put_stock_totals(totals)


def _flush(uow: UnitOfWork, positions: dict[str, SkuPosition]) -> None:
    totals = {}
    for position in positions.values():
        uow.put_stock(position.records[location] for location in position.changed_locations)
        if position.changed_groups:
            uow.put_group_reserved(
                position.sku,
                {group: position.group_reserved[group] for group in position.changed_groups},
            )
        if (changed := position.changed_totals) is not None:
            totals[position.sku] = changed
    uow.put_stock_totals(totals)


def _expected_first(future: Future) -> tuple[bool, int]:
    """Time order, futures without an expected time last (the proto promises time order)."""
    return (future.expected_us is None, future.expected_us or 0)


GROUP_FUTURES_SHOWN = 10


def _merged_futures(futures: Iterable[Future]) -> tuple[Future, ...]:
    """A group's restocks: members' futures summed per expected time, the earliest
    GROUP_FUTURES_SHOWN of them (futures_total still counts all), so that a group record stays
    small however many members it has."""
    by_time: dict[int | None, int] = {}
    for future in futures:
        by_time[future.expected_us] = by_time.get(future.expected_us, 0) + future.quantity
    merged = sorted((Future(units, at) for at, units in by_time.items()), key=_expected_first)
    return tuple(merged[:GROUP_FUTURES_SHOWN])


def _availability(position: SkuPosition, place: Place) -> Availability:
    if place.is_location:
        record, atf, ato = position.location_available(place.id)
        return Availability(
            place,
            position.sku,
            record.exists,
            record.on_hand,
            record.reserved,
            0,
            record.safety_stock,
            tuple(sorted(record.futures, key=_expected_first)) if record.futures else (),
            record.futures_total if record.futures else 0,
            atf,
            ato,
            record.effective_us,
        )
    ato = position.available_to_order(place)
    atf = position.available_to_fulfill(place)
    exists, on_hand, reserved, safety_stock, futures_total, effective = position.group_stock(
        place.id
    )
    group_reserved = position.group_reserved.get(place.id, 0)
    return Availability(
        place,
        position.sku,
        exists,
        on_hand,
        reserved + group_reserved,
        group_reserved,
        safety_stock,
        _merged_futures(position.group_futures(place.id)),
        futures_total,
        atf,
        ato,
        effective,
    )
