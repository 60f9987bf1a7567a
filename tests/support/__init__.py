"""Builders and assertions shared by the tests: requests in the domain's words, the error contract
(code, ErrorInfo reason and metadata, BadRequest fields) read from a real RpcError, and a bounded
wait. The server run as a subprocess is in tests/support/process.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import reservation_pb2 as res

WAREHOUSE = inv.LOCATION_TYPE_WAREHOUSE
STORE = inv.LOCATION_TYPE_STORE


def at(location_id: str) -> inv.Place:
    return inv.Place(location_id=location_id)


def at_group(group_id: str) -> inv.Place:
    return inv.Place(location_group_id=group_id)


def location(
    location_id: str,
    latitude: float = 40.0,
    longitude: float = -75.0,
    kind: int = WAREHOUSE,
    **fields: object,
) -> inv.Location:
    return inv.Location(
        id=location_id,
        display_name=location_id,
        type=kind,  # type: ignore[arg-type]
        position=inv.GeoPoint(latitude=latitude, longitude=longitude),
        **fields,  # type: ignore[arg-type]
    )


def level(
    location_id: str,
    sku: str,
    on_hand: int,
    safety_stock: int = 0,
    futures: tuple[int, ...] = (),
    **fields: object,
) -> inv.StockLevel:
    return inv.StockLevel(
        location_id=location_id,
        sku=sku,
        on_hand=on_hand,
        safety_stock=safety_stock,
        futures=[inv.Future(quantity=quantity) for quantity in futures],
        **fields,  # type: ignore[arg-type]
    )


def item(sku: str, place: inv.Place, quantity: int) -> res.ReservationItem:
    return res.ReservationItem(sku=sku, place=place, quantity=quantity)


@dataclass
class Failure:
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    fields: list[str]
    message: str


def failure(error: grpc.RpcError) -> Failure:
    """Decodes the error contract of DESIGN.md section 4; asserts exactly one ErrorInfo."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error}"
    infos, fields = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(violation.field for violation in bad.field_violations)
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {infos}"
    assert infos[0].domain == "omniroute"
    return Failure(error.code(), infos[0].reason, dict(infos[0].metadata), fields, status.message)  # type: ignore[attr-defined]


def availability(
    inventory: object, skus: list[str], locations: list[str] = (), groups: list[str] = ()
) -> dict[tuple[str, str], inv.AvailabilityRecord]:  # type: ignore[assignment]
    """GetAvailability as a dict keyed by (place id, sku)."""
    response = inventory.GetAvailability(  # type: ignore[attr-defined]
        inv.GetAvailabilityRequest(
            skus=skus, location_ids=list(locations), location_group_ids=list(groups)
        )
    )
    return {
        (record.place.location_id or record.place.location_group_id, record.sku): record
        for record in response.records
    }


def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 15.0, every_s: float = 0.02
) -> bool:
    """Polls `predicate` until it holds or `timeout_s` passes; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)
