"""ReservationService's requests: the reservation lifecycle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from omniroute.inventory.v1 import reservation_pb2 as res

from server.domain import commands
from server.domain.commands import ReservationFilter
from server.domain.errors import FieldViolation, InvalidRequest
from server.domain.model import ReservationState
from server.transport.validate.checker import Checker, page_after

MAX_ITEMS = 100
MAX_BATCH_REQUESTS = 100
"""Requests per Batch*Reservations call (OCI caps its reservation calls at 100 records)."""


def _items(
    check: Checker,
    field: str,
    messages: Sequence[res.ReservationItem | res.FulfillItem | res.ReleaseItem],
) -> tuple[commands.Item, ...]:
    items = []
    check.count(field, messages, MAX_ITEMS)
    for index, message in enumerate(messages):
        check.identifier(f"{field}[{index}].sku", message.sku)
        place = check.place(f"{field}[{index}].place", message.place)
        check.quantity(f"{field}[{index}].quantity", message.quantity)
        items.append(commands.Item(message.sku, place, message.quantity))
    check.distinct(field, [(item.sku, item.place) for item in items])
    return tuple(items)


def create_reservation(request: res.CreateReservationRequest) -> commands.CreateReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id, required=False)
    check.text("external_ref", request.external_ref)
    items = _items(check, "items", request.items)
    ttl_us = None
    if request.HasField("ttl"):
        ttl_us = check.ttl("ttl", request.ttl)
    check.done()
    return commands.CreateReservation(
        request.reservation_id, request.external_ref, items, request.allow_partial, ttl_us
    )


def transfer_reservation(request: res.TransferReservationRequest) -> commands.TransferReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    items = []
    check.count("items", request.items, MAX_ITEMS)
    for index, message in enumerate(request.items):
        field = f"items[{index}]"
        check.identifier(f"{field}.sku", message.sku)
        source = check.place(f"{field}.from_place", message.from_place)
        target = check.place(f"{field}.to_place", message.to_place)
        if source == target and source.id:
            check.fail(f"{field}.to_place", "INVALID_FIELD", "must differ from from_place")
        check.quantity(f"{field}.quantity", message.quantity)
        items.append(commands.TransferItem(message.sku, source, target, message.quantity))
    check.distinct("items", [(item.sku, item.from_place, item.to_place) for item in items])
    check.done()
    return commands.TransferReservation(
        request.reservation_id, tuple(items), request.ignore_availability_check
    )


def fulfill_reservation(request: res.FulfillReservationRequest) -> commands.FulfillReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    items = _items(check, "items", request.items)
    check.done()
    return commands.FulfillReservation(request.reservation_id, items)


def release_reservation(request: res.ReleaseReservationRequest) -> commands.ReleaseReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    if request.release_all:
        if request.items:
            check.fail("items", "INVALID_FIELD", "must be empty when release_all is set")
        items: tuple[commands.Item, ...] = ()
    else:
        items = _items(check, "items", request.items)
    check.done()
    return commands.ReleaseReservation(request.reservation_id, items, request.release_all)


def update_reservation(request: res.UpdateReservationRequest) -> commands.UpdateReservation:
    check = Checker()
    check.identifier("request_id", request.request_id, required=False)
    check.identifier("reservation_id", request.reservation_id)
    items = []
    check.count("items", request.items, MAX_ITEMS, minimum=0)
    for index, message in enumerate(request.items):
        field = f"items[{index}]"
        check.identifier(f"{field}.sku", message.sku)
        place = check.place(f"{field}.place", message.place)
        check.quantity(f"{field}.open_quantity", message.open_quantity, positive=False)
        items.append(commands.Item(message.sku, place, message.open_quantity))
    check.distinct("items", [(item.sku, item.place) for item in items])
    ttl_us = None
    if request.HasField("ttl"):
        ttl_us = check.ttl("ttl", request.ttl)
        if request.clear_ttl:
            check.fail("clear_ttl", "INVALID_FIELD", "must not be set together with ttl")
    elif not items and not request.clear_ttl:
        check.fail("items", "MISSING_FIELD", "set items, ttl or clear_ttl: nothing to update")
    check.done()
    return commands.UpdateReservation(
        request.reservation_id, tuple(items), ttl_us, request.clear_ttl
    )


class _OneRequest(Protocol):
    @property
    def request_id(self) -> str: ...


One = TypeVar("One", bound=_OneRequest)
Command = TypeVar("Command")


def batch(
    request_id: str, requests: Sequence[One], validate: Callable[[One], Command]
) -> list[Command]:
    """The commands of a batch's requests, each validated as its single-item RPC would be; any
    violation fails the whole batch, its field path naming the request (`requests[3].items`)."""
    check = Checker()
    check.identifier("request_id", request_id, required=False)
    check.count("requests", requests, MAX_BATCH_REQUESTS)
    found = []
    for index, one in enumerate(requests):
        if one.request_id:
            check.fail(
                f"requests[{index}].request_id",
                "INVALID_FIELD",
                "must be empty: the batch's request_id covers every request",
            )
            continue
        try:
            found.append(validate(one))
        except InvalidRequest as error:
            check.violations.extend(
                FieldViolation(f"requests[{index}].{v.field}", v.reason, v.description)
                for v in error.violations
            )
    check.done()
    return found


def reservation_id(request: res.GetReservationRequest) -> str:
    check = Checker()
    check.identifier("reservation_id", request.reservation_id)
    check.done()
    return str(request.reservation_id)


def reservation_page(request: res.ListReservationsRequest) -> tuple[int, str, ReservationFilter]:
    """(page size, id to continue after, which reservations) of a ListReservations request."""
    check = Checker()
    size, token = check.page(request.page_size, request.page_token)
    after = page_after(check, token)
    state = None
    if request.state in {known.value for known in ReservationState}:
        state = ReservationState(request.state)
    elif request.state:
        check.fail("state", "INVALID_FIELD", "must be a known reservation state or unspecified")
    external_ref = check.text("external_ref", request.external_ref)
    sku = check.identifier("sku", request.sku, required=False)
    place = check.place("place", request.place) if request.HasField("place") else None
    check.done()
    return size, after, ReservationFilter(state, external_ref, sku, place)
