"""What a write changed in availability: every (SKU, place) record that GetAvailability would now
answer differently, with its value after the write, for the change log (the availability feed).

A write of one SKU changes the records of the locations it wrote, of the groups holding them and
of the groups whose reservations it changed. Where groups hold reservations of the SKU, it can
also change what those reservations need elsewhere (coverage.py): the headroom of every group
sharing a membership class with them, and, when a class must supply some of them (its slack
below its capacity, before or after), the need of the class's other locations. Those are the
candidates; each is computed before and after the write, and only records that differ are
logged, so a consumer that keeps the latest value per key always agrees with GetAvailability."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

import numpy as np

from server.domain.commands import Availability
from server.domain.coverage import MembershipClasses
from server.domain.model import Place
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
        groups |= demand | _groups_holding(classes, _members(classes, demand))
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
    found = {classes.class_of[location] for location in locations if location in classes.class_of}
    if not found:
        return set()
    pairs = np.isin(classes.pair_class, list(found))
    return {classes.groups[g] for g in np.unique(classes.pair_group[pairs]).tolist()}


def _members(classes: MembershipClasses, groups: Collection[str]) -> set[str]:
    """A location of each class of `groups`: enough to find the groups sharing them."""
    wanted = {int(k) for group in groups for k in classes.of_group(group)}
    return {classes.members[k][0] for k in wanted}


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
