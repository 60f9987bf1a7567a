"""ReservationService: the reservation lifecycle."""

from __future__ import annotations

from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.inventory.v1 import reservation_pb2_grpc

from server.domain.ledger import Ledger
from server.domain.port import UnitOfWork
from server.transport import convert, paging
from server.transport.status import Context, rpc
from server.transport.transactions import Transactions
from server.transport.validate import reservations as validate


class ReservationServicer(reservation_pb2_grpc.ReservationServiceServicer):
    def __init__(self, transactions: Transactions, ledger: Ledger) -> None:
        self.tx = transactions
        self.ledger = ledger

    @rpc
    async def CreateReservation(
        self, request: res.CreateReservationRequest, context: Context
    ) -> res.CreateReservationResponse:
        command = validate.create_reservation(request)

        def run(uow: UnitOfWork) -> res.CreateReservationResponse:
            reservation, items = self.ledger.create_reservation(uow, command)
            return res.CreateReservationResponse(
                reservation=convert.reservation(reservation),
                items=[convert.reserved_item(item) for item in items],
            )

        return await self.tx.mutate(
            request,
            {item.sku for item in command.items},
            run,
        )

    @rpc
    async def GetReservation(
        self, request: res.GetReservationRequest, context: Context
    ) -> res.GetReservationResponse:
        reservation_id = validate.reservation_id(request)
        reservation = await self.tx.query(lambda uow: self.ledger.reservation(uow, reservation_id))
        return res.GetReservationResponse(reservation=convert.reservation(reservation))

    @rpc
    async def ListReservations(
        self, request: res.ListReservationsRequest, context: Context
    ) -> res.ListReservationsResponse:
        size, after, wanted = validate.reservation_page(request)
        page, token = await self.tx.query(
            lambda uow: paging.fill(
                uow.list_reservations(after, size + 1, wanted),
                size,
                convert.reservation,
                lambda x: x.id,
            ),
            big=size > paging.BIG_PAGE,
        )
        return res.ListReservationsResponse(reservations=page, next_page_token=token)

    @rpc
    async def TransferReservation(
        self, request: res.TransferReservationRequest, context: Context
    ) -> res.TransferReservationResponse:
        command = validate.transfer_reservation(request)
        return await self.tx.mutate(
            request,
            {item.sku for item in command.items},
            lambda uow: res.TransferReservationResponse(
                reservation=convert.reservation(self.ledger.transfer(uow, command))
            ),
        )

    @rpc
    async def FulfillReservation(
        self, request: res.FulfillReservationRequest, context: Context
    ) -> res.FulfillReservationResponse:
        command = validate.fulfill_reservation(request)
        return await self.tx.mutate(
            request,
            {item.sku for item in command.items},
            lambda uow: res.FulfillReservationResponse(
                reservation=convert.reservation(self.ledger.fulfill(uow, command))
            ),
        )

    @rpc
    async def ReleaseReservation(
        self, request: res.ReleaseReservationRequest, context: Context
    ) -> res.ReleaseReservationResponse:
        command = validate.release_reservation(request)
        skus = {item.sku for item in command.items}
        if command.release_all:
            # A reservation's SKUs never change after creation, so reading them first is safe.
            # Unknown reservations lock nothing and fail inside the unit of work, after the
            # request_id check (a reused request_id is REQUEST_ID_REUSED, not NOT_FOUND).
            skus = await self.tx.query(lambda uow: _skus_of(uow, command.reservation_id))
        return await self.tx.mutate(
            request,
            skus,
            lambda uow: res.ReleaseReservationResponse(
                reservation=convert.reservation(self.ledger.release(uow, command))
            ),
        )


def _skus_of(uow: UnitOfWork, reservation_id: str) -> set[str]:
    reservation = uow.reservation(reservation_id)
    return reservation.skus if reservation else set()
