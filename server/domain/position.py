"""One SKU's stock as a transaction sees it, with the availability rules of DESIGN.md section 2
and the changes that reservations make to it."""

from __future__ import annotations

from server.domain.coverage import CoverageNetwork
from server.domain.model import Place, StockRecord


class SkuPosition:
    """Stock records of one SKU at every location that matters to the places a command touches
    (the places themselves and the members of every group whose reservations can compete with
    them), the open group reservations among those groups, and their membership."""

    def __init__(
        self,
        sku: str,
        records: dict[str, StockRecord],
        group_reserved: dict[str, int],
        members: dict[str, tuple[str, ...]],
    ) -> None:
        self.sku = sku
        self.records = records
        self.group_reserved = group_reserved
        self.members = members
        self.changed_locations: set[str] = set()
        self.changed_groups: set[str] = set()
        self._order_network: CoverageNetwork | None = None
        self._fulfill_network: CoverageNetwork | None = None
        self._contested: set[str] | None = None  # members of groups holding reservations

    # --- reading -------------------------------------------------------------------------

    def record(self, location_id: str) -> StockRecord:
        found = self.records.get(location_id)
        return found if found is not None else StockRecord(self.sku, location_id)

    def _network(self, *, fulfill: bool) -> CoverageNetwork:
        cached = self._fulfill_network if fulfill else self._order_network
        if cached is None:
            locations = {location for group in self.members.values() for location in group}
            capacity = {
                location: max(
                    0,
                    self.record(location).free_to_fulfill
                    if fulfill
                    else self.record(location).free_to_order,
                )
                for location in locations
            }
            cached = CoverageNetwork(capacity, self.group_reserved, self.members)
            if fulfill:
                self._fulfill_network = cached
            else:
                self._order_network = cached
        return cached

    def _need(self, location_id: str) -> int:
        if self._contested is None:
            self._contested = {
                location
                for group, units in self.group_reserved.items()
                if units
                for location in self.members[group]
            }
        if location_id not in self._contested:
            return 0
        return self._network(fulfill=False).need(location_id)

    def available_to_order(self, place: Place) -> int:
        """What can still be reserved at the place without uncovering any group reservation."""
        if place.is_location:
            capacity = max(0, self.record(place.id).free_to_order)
            return max(0, capacity - self._need(place.id))
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
        """`available_to_fulfill` at a location, by id. Routing asks it for every SKU at every
        candidate (5,000 times for 5 lines x 1,000 candidates) and most have no stock record,
        so that case answers 0 without building a Place or an empty record."""
        record = self.records.get(location_id)
        if record is None:
            return 0  # no stock: nothing to ship, whatever group reservations need
        return max(0, record.free_to_fulfill - self._need(location_id))

    def group_members(self, group_id: str) -> tuple[str, ...]:
        return self.members[group_id]

    # --- changing ------------------------------------------------------------------------

    def _changed(self) -> None:
        self._order_network = None
        self._fulfill_network = None
        self._contested = None

    def hold(self, place: Place, quantity: int) -> None:
        """Count `quantity` more units as reserved at the place (negative to give back)."""
        if place.is_location:
            record = self.record(place.id)
            self.records[place.id] = record.changed_by(reserved=quantity)
            self.changed_locations.add(place.id)
        else:
            self.group_reserved[place.id] = self.group_reserved.get(place.id, 0) + quantity
            self.changed_groups.add(place.id)
        self._changed()

    def ship(self, location_id: str, quantity: int) -> None:
        """Units leave the building: out of reserved and out of on hand."""
        record = self.record(location_id)
        self.records[location_id] = record.changed_by(reserved=-quantity, on_hand=-quantity)
        self.changed_locations.add(location_id)
        self._changed()
