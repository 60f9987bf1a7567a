"""What a write changed in availability: every (SKU, place) record that GetAvailability would now
answer differently, with its value after the write, for the change log (the availability feed).

A write of one SKU changes the records of the locations it wrote, of the groups holding them and
of the groups whose reservations it changed. Where groups hold reservations of the SKU, it can
also change what those reservations need elsewhere (coverage.py): the headroom of every group
sharing a membership class with them, and, when a class must supply some of them (its slack
below its capacity, before or after), the need of the class's other locations. Those are the
candidates; each is computed before and after the write, and only records that differ are
logged, so a consumer that keeps the latest value per key always agrees with GetAvailability.
A change of group membership is the same idea over the whole network (RegroupedAvailability)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

import numpy as np

from server.domain.commands import Availability
from server.domain.coverage import UNLIMITED, MembershipClasses
from server.domain.model import LocationGroup, Place, StockRecord
from server.domain.port import UnitOfWork
from server.domain.position import SkuPosition

AvailabilityOf = Callable[[SkuPosition, Place], Availability]
"""How the ledger computes one record from a position (ledger._availability)."""


def changed_availability(
    uow: UnitOfWork, changed: SkuPosition, available: AvailabilityOf
) -> list[Availability]:
    """The records of `changed`'s SKU that its changes altered, as they are after them."""
    classes = changed.classes
    locations = set(changed.changed_locations)
    if classes is None:  # no group matters: only the records written
        return _differing(changed.as_loaded(()), changed, locations, (), available)
    groups = set(changed.changed_groups) | _groups_holding(classes, locations)
    demand = _demanding(changed) | {
        group for group, units in changed.loaded_group_reserved.items() if units
    }
    if demand:
        groups |= demand | _groups_in(
            classes, {int(k) for g in demand for k in classes.of_group(g)}
        )
    groups &= set(classes.group_index)
    before, after = changed.as_loaded(groups), changed.as_changed(groups)
    if demand:
        thresholds = _need_moved(before, after, classes)
        if thresholds:
            # A location's need moves only if its free stock to order exceeds the lower slack.
            records = {
                location: record
                for location, record in uow.stock_above(
                    changed.sku, min(thresholds.values())
                ).items()
                if location not in locations
                and (k := classes.class_of.get(location)) in thresholds
                and max(0, record.free_to_order) > thresholds[k]
            }
            before.with_records(records)
            after.with_records(records)
            locations |= set(records)
    return _differing(before, after, locations, groups, available)


def _differing(
    before: SkuPosition,
    after: SkuPosition,
    locations: Collection[str],
    groups: Collection[str],
    available: AvailabilityOf,
) -> list[Availability]:
    """The records at these places that differ between the two positions, as `after` has them."""
    places = [Place.location(location) for location in sorted(locations)]
    places += [Place.group(group) for group in sorted(groups)]
    return [now for place in places if (now := available(after, place)) != available(before, place)]


def _demanding(position: SkuPosition) -> set[str]:
    return {group for group, units in position.group_reserved.items() if units}


def _groups_holding(classes: MembershipClasses, locations: Iterable[str]) -> set[str]:
    """The groups that hold any of `locations`."""
    class_of = classes.class_of
    return _groups_in(classes, {class_of[loc] for loc in locations if loc in class_of})


def _groups_in(classes: MembershipClasses, class_indices: Collection[int]) -> set[str]:
    """The groups that hold any location of these classes."""
    if not class_indices:
        return set()
    pairs = np.isin(classes.pair_class, list(class_indices))
    return {classes.groups[g] for g in np.unique(classes.pair_group[pairs]).tolist()}


def _need_moved(
    before: SkuPosition, after: SkuPosition, classes: MembershipClasses
) -> dict[int, int]:
    """The classes whose members' need (coverage.py) may differ, each with the lower of its
    slacks: a class whose slack moved while some of it was needed (slack below capacity, before
    or after). A class with slack at its capacity needs nothing of any member."""
    moved: dict[int, int] = {}
    for k in range(classes.count):
        capacity_before, slack_before = before.order_slack(k)
        capacity_after, slack_after = after.order_slack(k)
        if slack_before != slack_after and (
            slack_before < capacity_before or slack_after < capacity_after
        ):
            moved[k] = min(slack_before, slack_after)
    return moved


def cost(position: SkuPosition) -> int:
    """Roughly how many max-flow solves logging a change of this position (as loaded) takes:
    where groups hold or take reservations of the SKU, every group and class may be looked at
    twice."""
    classes = position.classes
    if classes is None or not (_demanding(position) or position.asked_groups):
        return 1
    return len(classes.groups) + classes.count


class RegroupedAvailability:
    """What a change of group membership changes: loaded before the change (`__init__`) and
    compared after it (`changed`). A group whose members change has new records for every SKU
    stocked at a location it gains or loses. Where a SKU has group reservations, coverage can shift
    anywhere in the groups: every group's record is compared, and every location whose free
    stock exceeds the lower of its class's slacks, before and after (below both, it needs
    nothing either way). A network change runs on a worker thread."""

    def __init__(
        self,
        uow: UnitOfWork,
        groups: Sequence[LocationGroup],
        load: Load,
        available: AvailabilityOf,
    ) -> None:
        self.load, self.available = load, available
        stored = uow.groups([group.id for group in groups])
        self.regrouped = {
            group.id
            for group in groups
            if group.id not in stored
            or set(stored[group.id].location_ids) != set(group.location_ids)
            or stored[group.id].enabled != group.enabled
        }
        moved = {
            loc for group in groups if group.id in self.regrouped for loc in group.location_ids
        }
        moved |= {loc for gid in self.regrouped & set(stored) for loc in stored[gid].location_ids}
        if moved:
            uow.slow_work()  # sums over the new groups follow: never on the event loop
        self.classes = uow.membership_classes()
        demanding = sorted(uow.skus_reserved_at_groups(self.classes.groups)) if moved else []
        plain = sorted(set(uow.skus_at(moved)) - set(demanding)) if moved else []
        self.existing = set(self.classes.groups) | set(stored)
        self.plain = load(uow, plain, self.regrouped & self.existing) if plain else {}
        self.demanding = load(uow, demanding, self.existing) if demanding else {}

    def changed(self, uow: UnitOfWork) -> list[Availability]:
        """After the change, in the same unit of work: the records that differ."""
        classes = uow.membership_classes()
        changes = []
        for loaded, groups in (
            (self.plain, self.regrouped),
            (self.demanding, set(classes.groups) | self.regrouped),
        ):
            positions = self.load(uow, sorted(loaded), groups) if loaded else {}
            for sku, before in sorted(loaded.items()):
                now = positions[sku]
                places = [Place.group(group) for group in sorted(groups)]
                if loaded is self.demanding:
                    records = _freed(
                        uow,
                        sku,
                        before,
                        before.classes or self.classes,
                        now,
                        now.classes or classes,
                    )
                    before.with_records(records)
                    now.with_records(records)
                    places += [Place.location(location) for location in sorted(records)]
                for place in places:
                    record = self.available(now, place)
                    if place.id not in self.existing and not place.is_location:
                        changes.append(record)  # a new group
                    elif record != self.available(before, place):
                        changes.append(record)
        return changes


class ResummedAvailability:
    """What a write that moves some of a SKU's records between membership classes changes (a
    record excluded from groups, or no longer): like a change of membership for that SKU alone.
    Every group's record of the SKU, the records written and those of locations whose need may
    move are compared before (`__init__`) and after the write (`changed`)."""

    def __init__(
        self,
        uow: UnitOfWork,
        written: Collection[tuple[str, str]],
        load: Load,
        available: AvailabilityOf,
    ) -> None:
        self.load, self.available = load, available
        self.written = {(sku, location) for sku, location in written}
        self.skus = sorted({sku for sku, _ in self.written})
        uow.slow_work()  # every group of the SKUs is compared: never on the event loop
        self.groups = uow.membership_classes().groups
        self.before = load(uow, self.skus, self.groups)
        self._with_written(uow, self.before)

    def _with_written(self, uow: UnitOfWork, positions: dict[str, SkuPosition]) -> None:
        for (sku, location), record in uow.stock_of(self.written).items():
            positions[sku].with_records({location: record})

    def changed(self, uow: UnitOfWork) -> list[Availability]:
        """After the write, in the same unit of work: the records that differ."""
        now = self.load(uow, self.skus, self.groups)
        self._with_written(uow, now)
        changes = []
        for sku in self.skus:
            before, after = self.before[sku], now[sku]
            locations = {location for s, location in self.written if s == sku}
            if before.classes is not None and after.classes is not None:
                records = _freed(uow, sku, before, before.classes, after, after.classes)
                before.with_records(records)
                after.with_records(records)
                locations |= set(records)
            changes += _differing(before, after, locations, self.groups, self.available)
        return changes


def _freed(
    uow: UnitOfWork,
    sku: str,
    before: SkuPosition,
    classes_before: MembershipClasses,
    after: SkuPosition,
    classes_after: MembershipClasses,
) -> dict[str, StockRecord]:
    """The SKU's records whose need may differ: free stock to order above the lower of the
    slacks of its class before and after (a location in no class has no need)."""
    slack_before = [before.order_slack(k)[1] for k in range(classes_before.count)]
    slack_after = [after.order_slack(k)[1] for k in range(classes_after.count)]
    lowest = min([*slack_before, *slack_after], default=None)
    if lowest is None:
        return {}

    def threshold(location: str) -> int:
        k_before = classes_before.class_of.get(location)
        k_after = classes_after.class_of.get(location)
        return min(
            slack_before[k_before] if k_before is not None else UNLIMITED,
            slack_after[k_after] if k_after is not None else UNLIMITED,
        )

    return {
        location: record
        for location, record in uow.stock_above(sku, lowest).items()
        if max(0, record.free_to_order) > threshold(location)
    }


Load = Callable[[UnitOfWork, Sequence[str], Collection[str]], dict[str, SkuPosition]]
"""Loads each SKU's position with these groups asked about (ledger._load_positions)."""
