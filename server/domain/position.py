"""One SKU's stock as a transaction sees it, with the availability rules of DESIGN.md section 2
and the changes that reservations make to it."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from server.domain.coverage import Coverage, MembershipClasses
from server.domain.model import Future, Place, StockRecord
from server.domain.totals import StockTotals

if TYPE_CHECKING:
    from server.domain.port import LocationNumbering


class SkuPosition:
    """The stock records of one SKU at the locations a command names, its totals per membership
    class (when groups matter: a group is named, or holds reservations of the SKU), and its open
    group reservations."""

    def __init__(
        self,
        sku: str,
        records: dict[str, StockRecord],
        group_reserved: dict[str, int],
        classes: MembershipClasses | None = None,
        totals: StockTotals | None = None,
        groups: Collection[str] = (),
    ) -> None:
        """`totals` are those of `classes` (both or neither); `groups`: the groups that will be
        asked about besides those holding reservations."""
        self.sku = sku
        self.records = records
        self.group_reserved = group_reserved
        # As loaded, for what changed (server/domain/changes.py): changes replace entries of
        # the dicts and copy the totals, so shallow copies keep the loaded state.
        self._loaded = (dict(records), dict(group_reserved), totals)
        self.changed_locations: set[str] = set()
        self.changed_groups: set[str] = set()
        self._classes = classes
        self._totals = totals
        self._own_totals = False  # copied before the first change: the given ones are shared
        self._groups = tuple(groups)
        self._coverage: dict[bool, Coverage] = {}
        # The classes, if some group holds reservations of the SKU (once checked).
        self._held_classes: MembershipClasses | None = None
        self._held_checked = False

    @classmethod
    def of_records(
        cls,
        sku: str,
        records: Mapping[str, StockRecord],
        group_reserved: Mapping[str, int],
        members: Mapping[str, Sequence[str]],
    ) -> SkuPosition:
        """A position over an explicit membership, every member's record given."""
        classes = MembershipClasses.of(members)
        totals = StockTotals.of(records.values(), classes)
        return cls(sku, dict(records), dict(group_reserved), classes, totals, tuple(members))

    def as_loaded(self, groups: Collection[str]) -> SkuPosition:
        """This SKU as it was loaded, before any change, asked about `groups` too."""
        records, group_reserved, totals = self._loaded
        return SkuPosition(
            self.sku, dict(records), dict(group_reserved), self._classes, totals, groups
        )

    def as_changed(self, groups: Collection[str]) -> SkuPosition:
        """This SKU with its changes, asked about `groups` too."""
        return SkuPosition(
            self.sku,
            dict(self.records),
            dict(self.group_reserved),
            self._classes,
            self._totals,
            groups,
        )

    def with_records(self, records: Mapping[str, StockRecord]) -> None:
        """Adds records of locations that nothing changed (to be asked about them)."""
        for location_id, record in records.items():
            self.records.setdefault(location_id, record)

    def loaded_record(self, location_id: str) -> StockRecord:
        """The location's record as loaded, before any change."""
        found = self._loaded[0].get(location_id)
        return found if found is not None else StockRecord(self.sku, location_id)

    @property
    def loaded_group_reserved(self) -> dict[str, int]:
        """Open group reservations per group as loaded, before any change."""
        return self._loaded[1]

    @property
    def asked_groups(self) -> tuple[str, ...]:
        return self._groups

    @property
    def classes(self) -> MembershipClasses | None:
        """The membership classes, when loaded with its totals."""
        return self._classes if self._totals is not None else None

    def order_slack(self, class_index: int) -> tuple[int, int]:
        """Class k's summed capacity to order and its slack s_k (coverage.py)."""
        _classes, totals = self._by_class()
        capacity = int(totals.capacity(fulfill=False)[class_index])
        if not any(self.group_reserved.values()):
            return capacity, capacity
        return capacity, self._network(fulfill=False).slack(class_index)

    # --- reading -------------------------------------------------------------------------

    def record(self, location_id: str) -> StockRecord:
        found = self.records.get(location_id)
        return found if found is not None else StockRecord(self.sku, location_id)

    def _by_class(self) -> tuple[MembershipClasses, StockTotals]:
        if self._classes is None or self._totals is None:
            raise ValueError(f"{self.sku} was loaded without its totals: no group was named")
        return self._classes, self._totals

    def _network(self, *, fulfill: bool) -> Coverage:
        found = self._coverage.get(fulfill)
        if found is None:
            classes, totals = self._by_class()
            found = Coverage(
                totals.capacity(fulfill=fulfill), classes, self.group_reserved, self._groups
            )
            self._coverage[fulfill] = found
        return found

    def _need(self, location_id: str, free_to_order: int) -> int:
        """need_l of a location whose free stock to order is `free_to_order` (see
        server/domain/coverage.py): 0 unless a group holds reservations of the SKU."""
        if not self._held_checked:
            self._held_classes = self._classes if any(self.group_reserved.values()) else None
            self._held_checked = True
        if self._held_classes is None:
            return 0
        k = self._held_classes.class_of.get(location_id)
        if k is None:
            return 0
        return max(0, max(0, free_to_order) - self._network(fulfill=False).slack(k))

    def location_available(self, location_id: str) -> tuple[StockRecord, int, int]:
        """The location's record, its ATF and its ATO, computed together (GetAvailability
        asks for up to 10,000 of them in one call)."""
        record = self.record(location_id)
        free_to_fulfill = record.on_hand - record.reserved - record.safety_stock
        free_to_order = (
            free_to_fulfill + record.futures_total if record.futures else free_to_fulfill
        )
        need = self._need(location_id, free_to_order)
        return record, max(0, free_to_fulfill - need), max(0, max(0, free_to_order) - need)

    def available_to_order(self, place: Place) -> int:
        """What can still be reserved at the place without uncovering any group reservation."""
        if place.is_location:
            return self.location_available(place.id)[2]
        if self._classes is not None and place.id in self._classes.disabled:
            return 0  # a disabled group takes nothing new
        return self._network(fulfill=False).headroom(place.id)

    def available_to_fulfill(self, place: Place) -> int:
        """What can ship now. At a location: free stock on hand less what group reservations
        need from it. At a group: what can still be reserved there and shipped from stock on
        hand, counting every existing group reservation as shipping from stock on hand first
        (as much of it as stock on hand can cover; the rest of it waits for futures)."""
        if place.is_location:
            return self.location_available_to_fulfill(place.id)
        shippable = self._network(fulfill=True).headroom(place.id)
        return min(self.available_to_order(place), shippable)

    def location_available_to_fulfill(self, location_id: str) -> int:
        """`available_to_fulfill` at a location, by id: routing asks it for every candidate,
        and one without a stock record answers 0 at once."""
        record = self.records.get(location_id)
        if record is None:
            return 0  # no stock: nothing to ship, whatever group reservations need
        return max(0, record.free_to_fulfill - self._need(location_id, record.free_to_order))

    def locations_available_to_fulfill(
        self,
        numbering: LocationNumbering,
        locations: npt.NDArray[np.int32],
        free_to_fulfill: npt.NDArray[np.int64],
        free_to_order: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.int64]:
        """`location_available_to_fulfill` at many locations at once, from their free stock
        (storage's arrays, not records; `locations` by their `numbering`): routing asks it for
        thousands of candidates."""
        if self._classes is None or not any(self.group_reserved.values()):
            return np.maximum(free_to_fulfill, 0)
        classes = numbering.classes(self._classes)[locations]
        grouped = classes >= 0
        slack = np.zeros(self._classes.count, dtype=np.int64)
        network = self._network(fulfill=False)
        for k in np.unique(classes[grouped]):  # a few classes however many locations
            slack[k] = network.slack(int(k))
        need = np.where(grouped, np.maximum(0, np.maximum(0, free_to_order) - slack[classes]), 0)
        return np.maximum(0, free_to_fulfill - need)

    def group_stock(self, group_id: str) -> tuple[bool, int, int, int, int, int | None]:
        """(any record exists, on hand, reserved at members, safety stock, futures total,
        latest effective time) summed over the group's members."""
        classes, totals = self._by_class()
        return totals.summed(classes.of_group(group_id))

    def group_futures(self, group_id: str) -> list[Future]:
        classes, totals = self._by_class()
        return totals.futures_of(classes.of_group(group_id))

    @property
    def changed_totals(self) -> StockTotals | None:
        """The totals after this position's changes to records, if it has any."""
        return self._totals if self._own_totals else None

    # --- changing ------------------------------------------------------------------------

    def hold(self, place: Place, quantity: int) -> None:
        """Count `quantity` more units as reserved at the place (negative to give back)."""
        if place.is_location:
            self._replace(self.record(place.id).changed_by(reserved=quantity))
        else:
            self.group_reserved[place.id] = self.group_reserved.get(place.id, 0) + quantity
            self.changed_groups.add(place.id)
            self._coverage.clear()
            self._held_checked = False

    def ship(self, location_id: str, quantity: int) -> None:
        """Units leave the building: out of reserved and out of on hand."""
        self._replace(self.record(location_id).changed_by(reserved=-quantity, on_hand=-quantity))

    def put(self, new: StockRecord) -> None:
        """Replaces the location's record (an absolute stock level or an adjustment)."""
        self._replace(new)

    def _replace(self, new: StockRecord) -> None:
        location_id = new.location_id
        old = self.record(location_id)
        self.records[location_id] = new
        self.changed_locations.add(location_id)
        k = self._classes.class_of.get(location_id) if self._classes else None
        if k is not None and self._totals is not None:
            if not self._own_totals:
                self._totals, self._own_totals = self._totals.copy(), True
            self._totals.replace(k, old, new)
            self._coverage.clear()
