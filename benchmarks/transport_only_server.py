"""`python -m server` with CreateReservation answered without the ledger, for
benchmarks/ledger_bench.py's `create_transport` scenario: what the transport alone costs for
CreateReservation's own messages.

The handler decodes and validates the request as the real one does (the same `rpc` wrapper and
`validate.create_reservation`) and returns a reply of the real one's shape (one reservation line
and one reserved item, timestamps set), built once. Everything the real handler does beyond this
is the ledger's cost: the request_id check, reading stock and group reservations, the rules, the
writes and their commit, and building the reply. Never used outside benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "gen")]

from google.protobuf.timestamp_pb2 import Timestamp  # noqa: E402
from omniroute.inventory.v1 import inventory_pb2, reservation_pb2  # noqa: E402

from server.cli import main  # noqa: E402
from server.transport.reservation import ReservationServicer  # noqa: E402
from server.transport.status import Context, rpc  # noqa: E402
from server.transport.validate import reservations as validate  # noqa: E402

_PLACE = inventory_pb2.Place(location_id="loc-0000")
_NOW = Timestamp(seconds=1_790_000_000, nanos=123_456_000)
REPLY = reservation_pb2.CreateReservationResponse(
    reservation=reservation_pb2.Reservation(
        id="019ad4c2-5e4f-7a1b-9c3d-2e5f6a7b8c9d",
        state=reservation_pb2.RESERVATION_STATE_ACTIVE,
        lines=[reservation_pb2.ReservationLine(sku="sku-00000", place=_PLACE, quantity=1, open=1)],
        create_time=_NOW,
        update_time=_NOW,
    ),
    items=[reservation_pb2.ReservedItem(sku="sku-00000", place=_PLACE, requested=1, reserved=1)],
)


@rpc
async def create_reservation(self: Any, request: Any, context: Context) -> Any:
    validate.create_reservation(request)
    return REPLY


if __name__ == "__main__":
    ReservationServicer.CreateReservation = create_reservation  # type: ignore[method-assign]
    sys.exit(main())
