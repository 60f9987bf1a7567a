"""ReservationService: the reservation lifecycle."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import TypeVar

from google.protobuf.message import Message
from omniroute.inventory.v1 import reservation_pb2 as res
from omniroute.inventory.v1 import reservation_pb2_grpc

from server.domain import commands
from server.domain.errors import Conflict, DomainError, ErrorKind, UnlockedSkus
from server.domain.ledger import Ledger
from server.domain.port import UnitOfWork
from server.transport import convert, paging
from server.transport.status import Context, rpc, status_message
from server.transport.transactions import Transactions
from server.transport.validate import reservations as validate

Command = TypeVar("Command")
Response = TypeVar("Response", bound=Message)
Result = TypeVar("Result", bound=Message)
Itemized = TypeVar(
    "Itemized",
    commands.CreateReservation,
    commands.TransferReservation,
    commands.FulfillReservation,
)
Batch = (
    res.BatchCreateReservationsRequest
    | res.BatchTransferReservationsRequest
    | res.BatchFulfillReservationsRequest
)
LOCK_ATTEMPTS = 5
"""Times a whole-reservation release reads the reservation's SKUs again after an update added
one between its read and its write (server/domain/ledger.py, _require_locked)."""


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
        return await self._releasing(
            request,
            [command],
            lambda uow, locked: res.ReleaseReservationResponse(
                reservation=convert.reservation(self.ledger.release(uow, command, locked))
            ),
        )

    @rpc
    async def UpdateReservation(
        self, request: res.UpdateReservationRequest, context: Context
    ) -> res.UpdateReservationResponse:
        command = validate.update_reservation(request)
        # Lines not named keep their SKUs' stock untouched: only the named SKUs need locks.
        return await self.tx.mutate(
            request,
            {item.sku for item in command.items},
            lambda uow: res.UpdateReservationResponse(
                reservation=convert.reservation(self.ledger.update(uow, command))
            ),
        )

    @rpc
    async def BatchCreateReservations(
        self, request: res.BatchCreateReservationsRequest, context: Context
    ) -> res.BatchCreateReservationsResponse:
        batch = validate.batch(request.request_id, request.requests, validate.create_reservation)

        def create(uow: UnitOfWork, command: commands.CreateReservation) -> Message:
            reservation, items = self.ledger.create_reservation(uow, command)
            return res.CreateReservationResponse(
                reservation=convert.reservation(reservation),
                items=[convert.reserved_item(item) for item in items],
            )

        return await self._batch(
            request,
            batch,
            create,
            res.CreateReservationResult,
            res.BatchCreateReservationsResponse,
        )

    @rpc
    async def BatchTransferReservations(
        self, request: res.BatchTransferReservationsRequest, context: Context
    ) -> res.BatchTransferReservationsResponse:
        batch = validate.batch(request.request_id, request.requests, validate.transfer_reservation)
        return await self._batch(
            request,
            batch,
            lambda uow, command: res.TransferReservationResponse(
                reservation=convert.reservation(self.ledger.transfer(uow, command))
            ),
            res.TransferReservationResult,
            res.BatchTransferReservationsResponse,
        )

    @rpc
    async def BatchFulfillReservations(
        self, request: res.BatchFulfillReservationsRequest, context: Context
    ) -> res.BatchFulfillReservationsResponse:
        batch = validate.batch(request.request_id, request.requests, validate.fulfill_reservation)
        return await self._batch(
            request,
            batch,
            lambda uow, command: res.FulfillReservationResponse(
                reservation=convert.reservation(self.ledger.fulfill(uow, command))
            ),
            res.FulfillReservationResult,
            res.BatchFulfillReservationsResponse,
        )

    async def _batch(
        self,
        request: Batch,
        batch: Sequence[Itemized],
        apply: Callable[[UnitOfWork, Itemized], Message],
        result: Callable[..., Result],
        response: Callable[..., Response],
    ) -> Response:
        """A batch of requests in one unit of work, locking every SKU they name."""
        return await self.tx.mutate(
            request,
            {item.sku for command in batch for item in command.items},
            lambda uow: response(results=_each(uow, batch, apply, request.all_or_nothing, result)),
            big=True,
        )

    @rpc
    async def BatchReleaseReservations(
        self, request: res.BatchReleaseReservationsRequest, context: Context
    ) -> res.BatchReleaseReservationsResponse:
        batch = validate.batch(request.request_id, request.requests, validate.release_reservation)
        return await self._releasing(
            request,
            batch,
            lambda uow, locked: res.BatchReleaseReservationsResponse(
                results=_each(
                    uow,
                    batch,
                    lambda uow, command: res.ReleaseReservationResponse(
                        reservation=convert.reservation(self.ledger.release(uow, command, locked))
                    ),
                    request.all_or_nothing,
                    res.ReleaseReservationResult,
                )
            ),
            big=len(batch) > 1,
        )

    async def _releasing(
        self,
        request: Message,
        releases: Sequence[commands.ReleaseReservation],
        run: Callable[[UnitOfWork, Collection[str]], Response],
        *,
        big: bool = False,
    ) -> Response:
        """Runs releases, locking the SKUs they name and those of the reservations they release
        whole. Those are read first; an update may add one before the write (which then refuses,
        UnlockedSkus), and the write runs again locking it too. Unknown reservations lock nothing
        and fail inside the unit of work, after the request_id check (a reused request_id is
        REQUEST_ID_REUSED, not NOT_FOUND)."""
        skus = {item.sku for command in releases for item in command.items}
        whole = [command.reservation_id for command in releases if command.release_all]
        if whole:
            skus |= await self.tx.query(lambda uow: _skus_of(uow, whole))
        for _ in range(LOCK_ATTEMPTS):
            locked = frozenset(skus)
            try:
                return await self.tx.mutate(
                    request, locked, partial(_locking, run, locked), big=big
                )
            except UnlockedSkus as error:
                skus |= error.skus
        raise Conflict(
            "CONFLICT", "the reservation kept gaining SKUs while it was released; retry the call"
        )


def _locking(
    run: Callable[[UnitOfWork, Collection[str]], Response],
    locked: Collection[str],
    uow: UnitOfWork,
) -> Response:
    return run(uow, locked)


def _skus_of(uow: UnitOfWork, reservation_ids: Collection[str]) -> set[str]:
    skus: set[str] = set()
    for reservation_id in reservation_ids:
        reservation = uow.reservation(reservation_id)
        skus |= reservation.skus if reservation else set()
    return skus


def _each(
    uow: UnitOfWork,
    batch: Sequence[Command],
    apply: Callable[[UnitOfWork, Command], Message],
    all_or_nothing: bool,
    result: Callable[..., Response],
) -> list[Response]:
    """Applies a batch's requests in order in one unit of work, each all or nothing: the ledger
    raises before it writes anything of a request it refuses, so a refused request leaves no
    trace and the next one goes on. With `all_or_nothing` the first refusal fails the batch
    (the unit of work rolls back what earlier requests wrote). Store failures (conflicts, lost
    connections) are never a request's own: they fail the batch, to be retried whole."""
    results = []
    for index, command in enumerate(batch):
        try:
            results.append(result(response=apply(uow, command)))
        except DomainError as error:
            if error.kind in _STORE_FAILURES:
                raise
            if all_or_nothing:
                error.metadata["request_index"] = str(index)
                raise
            results.append(result(error=status_message(error)))
    return results


_STORE_FAILURES = {ErrorKind.CONFLICT, ErrorKind.UNAVAILABLE, ErrorKind.DEADLINE}
