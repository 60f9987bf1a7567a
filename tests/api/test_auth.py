"""API keys and roles through the real server: every RPC of every service refused without a
key and to the roles the table leaves out, and served to the roles it names; revoked and expired
keys refused; request_ids scoped by tenant; health and reflection open; auth on once a key
exists. The command line and PostgreSQL sharing keys between servers are in test_auth_process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from omniroute.admin.v1 import api_keys_pb2 as ak
from omniroute.admin.v1 import api_keys_pb2_grpc
from omniroute.inventory.v1 import inventory_pb2 as inv
from omniroute.inventory.v1 import inventory_pb2_grpc, reservation_pb2_grpc
from omniroute.inventory.v1 import reservation_pb2 as res

from server.app import Running, start_server
from server.domain import access
from server.domain.access import Role
from server.domain.port import Store
from server.storage.sqlite import SqliteStore
from server.transport import auth
from server.transport.roles import ROLES_OF_RPC
from server.transport.services import SERVICES
from tests.api.helpers import RPC_TIMEOUT_S
from tests.support import at, failure, item, level, location, wait_until

pytestmark = pytest.mark.timeout(120)
EVERY_RPC = {
    f"/{service.full_name}/{method.name}": method
    for service in SERVICES
    for method in service.methods
}
AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def bearer(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def add_key(store: Store, role: Role, *, tenant: str = "", ttl_s: float | None = None) -> str:
    """A key of `role` written to the store, as `omniroute keys create --store` does."""
    now = time.time_ns() // 1000
    expires = None if ttl_s is None else now + int(ttl_s * 1e6)
    key, record = access.issue(role, tenant, "", now, expires)
    with store.write() as uow:
        uow.put_api_key(record)
    return key


def call(channel: grpc.Channel, rpc: str, key: str | None) -> grpc.StatusCode:
    """`rpc` with an empty request (and `key`, if any): the status code it ends with."""
    method = channel.unary_unary(rpc)  # bytes in, bytes out
    try:
        method(b"", metadata=bearer(key) if key else None, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[grpc.Channel, dict[Role, str]]]:
    """A SQLite server with one key per role, and a channel to it."""
    store = SqliteStore(tmp_path_factory.mktemp("auth") / "omniroute.sqlite3", synchronous="NORMAL")
    keys = {role: add_key(store, role) for role in Role}
    running = start_server("localhost:0", store, sweep_interval_s=0.05)
    with grpc.insecure_channel(f"localhost:{running.port}") as channel:
        yield channel, keys
    running.stop(grace_s=1)


# --- the role table --------------------------------------------------------------------------


def test_every_rpc_served_has_roles_and_the_table_names_no_other():
    assert set(ROLES_OF_RPC) == set(EVERY_RPC), "give a new RPC its roles in roles.py"
    assert all(Role.ADMIN in roles for roles in ROLES_OF_RPC.values())


def test_roles_are_the_documented_ones():
    def names(role: Role) -> set[str]:
        return {rpc.rpartition("/")[2] for rpc, roles in ROLES_OF_RPC.items() if role in roles}

    availability = {
        "GetAvailability",
        "FindNearbyAvailability",
        "WatchAvailability",
        "ListAvailabilityChanges",
    }
    storefront = availability | {
        "CreateReservation",
        "GetReservation",
        "ReleaseReservation",
        "UpdateReservation",
        "BatchCreateReservations",
        "BatchReleaseReservations",
    }
    assert names(Role.STOREFRONT) == storefront
    assert names(Role.ORDER_SYSTEM) == storefront | {
        "RouteOrder",
        "TransferReservation",
        "FulfillReservation",
        "BatchTransferReservations",
        "BatchFulfillReservations",
        "ListReservations",
    }
    assert names(Role.INVENTORY) == availability | {
        "UpsertLocations",
        "ListLocations",
        "UpsertLocationGroups",
        "ListLocationGroups",
        "SetStock",
        "AdjustStock",
        "ListStockMovements",
        "DeleteLocations",
        "DeleteLocationGroups",
        "DeleteStock",
        "ImportStock",
        "ExportStock",
        "ExportAvailability",
        "ExportReservations",
    }
    assert names(Role.ADMIN) == {method.name for method in EVERY_RPC.values()}


# --- every RPC, every role ---------------------------------------------------------------------


@pytest.mark.parametrize("rpc", sorted(EVERY_RPC))
def test_an_rpc_without_a_valid_key_is_unauthenticated(keyed, rpc: str):
    channel, keys = keyed
    for key, reason in (
        (None, "API_KEY_MISSING"),
        ("omr_000000000000_not-a-secret", "API_KEY_INVALID"),
        (keys[Role.ADMIN][:-1], "API_KEY_INVALID"),  # a known id, a wrong secret
        ("not even shaped like a key", "API_KEY_INVALID"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(rpc)(
                b"", metadata=bearer(key) if key else None, timeout=RPC_TIMEOUT_S
            )
        refusal = failure(caught.value)
        assert (refusal.code, refusal.reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)
        assert refusal.metadata == {}, "a refusal tells nothing of the keys that exist"


@pytest.mark.parametrize("rpc", sorted(EVERY_RPC))
def test_an_rpc_is_served_to_exactly_the_roles_the_table_gives_it(keyed, rpc: str):
    channel, keys = keyed
    for role, key in keys.items():
        if role in ROLES_OF_RPC[rpc]:
            assert call(channel, rpc, key) not in AUTH_CODES, role
            continue
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary(rpc)(b"", metadata=bearer(key), timeout=RPC_TIMEOUT_S)
        refusal = failure(caught.value)
        assert (refusal.code, refusal.reason) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "ROLE_NOT_ALLOWED",
        )
        assert refusal.metadata == {"role": role.value, "method": rpc}


def test_health_and_reflection_need_no_key(keyed):
    channel, _keys = keyed
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT_S
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=RPC_TIMEOUT_S
    )
    assert "omniroute.admin.v1.ApiKeyService" in {
        s.name for s in answer.list_services_response.service
    }


# --- key lifecycle ---------------------------------------------------------------------------


@pytest.fixture
def admin(store: Store) -> Iterator[tuple[Running, grpc.Channel, str]]:
    """A server of each backend whose store holds one admin key."""
    key = add_key(store, Role.ADMIN)
    running = start_server("localhost:0", store, sweep_interval_s=0.05)
    with grpc.insecure_channel(f"localhost:{running.port}") as channel:
        yield running, channel, key
    running.stop(grace_s=1)


def create_key(channel: grpc.Channel, admin_key: str, **fields: object) -> ak.CreateApiKeyResponse:
    stub = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
    return stub.CreateApiKey(  # type: ignore[no-any-return]
        ak.CreateApiKeyRequest(**fields), metadata=bearer(admin_key), timeout=RPC_TIMEOUT_S
    )


def list_locations(channel: grpc.Channel, key: str) -> grpc.StatusCode:
    return call(channel, "/omniroute.inventory.v1.InventoryService/ListLocations", key)


def test_a_revoked_key_is_refused_at_once_and_stays_listed(admin):
    _running, channel, admin_key = admin
    made = create_key(channel, admin_key, role=ak.ROLE_INVENTORY, description="wms feed")
    assert made.key.startswith(f"omr_{made.api_key.id}_")
    assert list_locations(channel, made.key) == grpc.StatusCode.OK

    stub = api_keys_pb2_grpc.ApiKeyServiceStub(channel)
    revoked = stub.RevokeApiKey(
        ak.RevokeApiKeyRequest(id=made.api_key.id),
        metadata=bearer(admin_key),
        timeout=RPC_TIMEOUT_S,
    )
    assert revoked.api_key.HasField("revoke_time")
    assert list_locations(channel, made.key) == grpc.StatusCode.UNAUTHENTICATED
    listed = stub.ListApiKeys(
        ak.ListApiKeysRequest(), metadata=bearer(admin_key), timeout=RPC_TIMEOUT_S
    )
    by_id = {key.id: key for key in listed.api_keys}
    assert by_id[made.api_key.id].HasField("revoke_time")
    assert by_id[made.api_key.id].description == "wms feed"
    assert "key" not in ak.ApiKey.DESCRIPTOR.fields_by_name, "a listed key never has its secret"
    again = stub.RevokeApiKey(
        ak.RevokeApiKeyRequest(id=made.api_key.id),
        metadata=bearer(admin_key),
        timeout=RPC_TIMEOUT_S,
    )
    assert again.api_key.revoke_time == revoked.api_key.revoke_time
    with pytest.raises(grpc.RpcError) as caught:
        stub.RevokeApiKey(
            ak.RevokeApiKeyRequest(id="nobody"), metadata=bearer(admin_key), timeout=RPC_TIMEOUT_S
        )
    assert failure(caught.value).reason == "API_KEY_NOT_FOUND"


def test_an_expired_key_is_refused(admin):
    _running, channel, admin_key = admin
    made = create_key(channel, admin_key, role=ak.ROLE_INVENTORY, ttl={"nanos": 300_000_000})
    assert made.api_key.HasField("expire_time")
    assert wait_until(lambda: list_locations(channel, made.key) == grpc.StatusCode.UNAUTHENTICATED)


def test_a_bad_create_request_is_refused_with_every_violation(admin):
    _running, channel, admin_key = admin
    with pytest.raises(grpc.RpcError) as caught:
        create_key(
            channel,
            admin_key,
            tenant=" padded ",
            description="x" * 201,
            expire_time={"seconds": 1},
        )
    refusal = failure(caught.value)
    assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(refusal.fields) == {"role", "tenant", "description", "expire_time"}


def test_a_request_id_belongs_to_the_tenant_of_the_key_that_sent_it(admin):
    _running, channel, admin_key = admin
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location("dc")]), metadata=bearer(admin_key)
    )
    inventory.SetStock(
        inv.SetStockRequest(levels=[level("dc", "tee", 10)]), metadata=bearer(admin_key)
    )
    shop_a = create_key(channel, admin_key, role=ak.ROLE_STOREFRONT, tenant="shop-a").key
    shop_a_rotated = create_key(channel, admin_key, role=ak.ROLE_STOREFRONT, tenant="shop-a").key
    shop_b = create_key(channel, admin_key, role=ak.ROLE_STOREFRONT, tenant="shop-b").key
    reservations = reservation_pb2_grpc.ReservationServiceStub(channel)

    def reserve(key: str) -> str:
        request = res.CreateReservationRequest(
            request_id="cart-1", items=[item("tee", at("dc"), 2)]
        )
        response = reservations.CreateReservation(
            request, metadata=bearer(key), timeout=RPC_TIMEOUT_S
        )
        return str(response.reservation.id)

    first = reserve(shop_a)
    assert reserve(shop_a_rotated) == first, "keys of one tenant share request_ids"
    other = reserve(shop_b)
    assert other != first, "another tenant's request_id is another request"
    held = reservations.GetReservation(
        res.GetReservationRequest(reservation_id=other), metadata=bearer(shop_b)
    )
    assert held.reservation.id == other


def test_the_history_names_the_key_that_made_each_change_never_the_key_itself(admin):
    _running, channel, admin_key = admin
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    stock_key = create_key(channel, admin_key, role=ak.ROLE_INVENTORY).key
    inventory.UpsertLocations(
        inv.UpsertLocationsRequest(locations=[location("dc")]), metadata=bearer(stock_key)
    )
    inventory.SetStock(
        inv.SetStockRequest(levels=[level("dc", "tee", 4)], request_id="set-1"),
        metadata=bearer(stock_key),
    )
    listed = inventory.ListStockMovements(
        inv.ListStockMovementsRequest(sku="tee"), metadata=bearer(admin_key)
    )
    (movement,) = listed.movements
    parsed = access.parse(stock_key)
    assert parsed is not None
    assert (movement.api_key_id, movement.rpc, movement.request_id) == (
        parsed[0],
        "SetStock",
        "set-1",
    )
    assert parsed[1] not in str(listed)


def test_auth_turns_on_when_the_first_key_is_made_and_stays_on_when_every_key_is_revoked(store):
    running = start_server("localhost:0", store, sweep_interval_s=0.05)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            assert list_locations(channel, "") == grpc.StatusCode.OK  # no key yet: open
            made = api_keys_pb2_grpc.ApiKeyServiceStub(channel).CreateApiKey(
                ak.CreateApiKeyRequest(role=ak.ROLE_ADMIN), timeout=RPC_TIMEOUT_S
            )
            assert list_locations(channel, "") == grpc.StatusCode.UNAUTHENTICATED
            assert list_locations(channel, made.key) == grpc.StatusCode.OK
            api_keys_pb2_grpc.ApiKeyServiceStub(channel).RevokeApiKey(
                ak.RevokeApiKeyRequest(id=made.api_key.id), metadata=bearer(made.key)
            )
            assert list_locations(channel, "") == grpc.StatusCode.UNAUTHENTICATED
    finally:
        running.stop(grace_s=1)


def test_require_auth_refuses_calls_before_any_key_exists(sqlite_path: Path):
    store = SqliteStore(sqlite_path, synchronous="NORMAL")
    running = start_server("localhost:0", store, require_auth=True, reflection_on=False)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            assert list_locations(channel, "") == grpc.StatusCode.UNAUTHENTICATED
            key = add_key(store, Role.INVENTORY)  # as `omniroute keys create --store` would
            assert wait_until(lambda: list_locations(channel, key) == grpc.StatusCode.OK)
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                list(
                    reflection.ServerReflectionInfo(
                        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                        timeout=RPC_TIMEOUT_S,
                    )
                )
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        running.stop(grace_s=1)


def test_a_key_made_elsewhere_works_at_once_without_waiting_for_the_next_read(
    sqlite_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The table is read every minute here: only the read an unknown id asks for finds it."""
    monkeypatch.setattr(auth, "REFRESH_S", 60.0)
    store = SqliteStore(sqlite_path, synchronous="NORMAL")
    add_key(store, Role.ADMIN)
    running = start_server("localhost:0", store)
    try:
        with grpc.insecure_channel(f"localhost:{running.port}") as channel:
            key = add_key(store, Role.INVENTORY)  # as another server or `keys --store` would
            time.sleep(auth.REREAD_UNKNOWN_S)
            assert list_locations(channel, key) == grpc.StatusCode.OK
    finally:
        running.stop(grace_s=1)
