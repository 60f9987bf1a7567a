"""Helpers for the API tests: request builders, calls that expect a refusal or retry a conflict,
and whole-state snapshots read through the API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import pytest
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

from tests.support import Failure, failure

RPC_TIMEOUT_S = 10.0
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_QUANTITY = 1_000_000_000_000


# --- requests in the domain's words ----------------------------------------------------


def transfer_item(sku: str, source: inv.Place, target: inv.Place, quantity: int) -> Any:
    return res.TransferItem(sku=sku, from_place=source, to_place=target, quantity=quantity)


def fulfill_item(sku: str, place: inv.Place, quantity: int) -> Any:
    return res.FulfillItem(sku=sku, place=place, quantity=quantity)


def release_item(sku: str, place: inv.Place, quantity: int) -> Any:
    return res.ReleaseItem(sku=sku, place=place, quantity=quantity)


def group(group_id: str, *members: str) -> inv.LocationGroup:
    return inv.LocationGroup(id=group_id, display_name=group_id, location_ids=list(members))


def place_id(place: inv.Place) -> str:
    return place.location_id or place.location_group_id


# --- calling and failing ---------------------------------------------------------------


def refused(method: Callable[..., Any], request: Any) -> Failure:
    """Calls `method` expecting an error with the rich status of DESIGN.md section 4."""
    with pytest.raises(grpc.RpcError) as caught:
        method(request, timeout=RPC_TIMEOUT_S)
    return failure(caught.value)


def retry_aborted(method: Callable[..., Any], request: Any, attempts: int = 20) -> Any:
    """Calls `method`, retrying ABORTED (the documented retryable conflict) a bounded number
    of times; any other error propagates."""
    for attempt in range(attempts):
        try:
            return method(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.ABORTED or attempt == attempts - 1:  # type: ignore[attr-defined]
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


# --- reading the whole state -----------------------------------------------------------


def list_all(list_method: Callable[..., Any], request: Any, field: str) -> list[Any]:
    """Every element of a paginated list RPC, following next_page_token (bounded)."""
    found: list[Any] = []
    request = _copy(request)
    for _ in range(10_000):
        page = list_method(request, timeout=RPC_TIMEOUT_S)
        found.extend(getattr(page, field))
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token
    raise AssertionError("pagination did not end")


def _copy(message: Any) -> Any:
    copied = type(message)()
    copied.CopyFrom(message)
    return copied


def all_reservations(reservations: Any, state: int = 0) -> list[Any]:
    return list_all(
        reservations.ListReservations,
        res.ListReservationsRequest(page_size=1000, state=state),  # type: ignore[arg-type]
        "reservations",
    )


def snapshot(
    inventory: Any,
    reservations: Any,
    skus: Iterable[str],
    locations: Iterable[str] = (),
    groups: Iterable[str] = (),
) -> dict[str, Any]:
    """Everything a client can read: network, availability of `skus` at the places, and every
    reservation. Two equal snapshots mean nothing visible changed in between."""
    return {
        "locations": list_all(
            inventory.ListLocations, inv.ListLocationsRequest(page_size=1000), "locations"
        ),
        "groups": list_all(
            inventory.ListLocationGroups,
            inv.ListLocationGroupsRequest(page_size=1000),
            "location_groups",
        ),
        "availability": list(
            inventory.GetAvailability(
                inv.GetAvailabilityRequest(
                    skus=list(skus), location_ids=list(locations), location_group_ids=list(groups)
                ),
                timeout=RPC_TIMEOUT_S,
            ).records
        ),
        "reservations": all_reservations(reservations),
    }


def open_by_place(reservation_list: Iterable[Any], sku: str) -> dict[str, int]:
    """Sum of open reservation lines of `sku` per place id."""
    totals: dict[str, int] = {}
    for reservation in reservation_list:
        for line in reservation.lines:
            if line.sku == sku and line.open:
                key = place_id(line.place)
                totals[key] = totals.get(key, 0) + line.open
    return totals
