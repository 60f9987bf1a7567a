"""ApiKeyService: keys made, listed and revoked by an admin (api_keys.proto)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from omniroute.admin.v1 import api_keys_pb2 as ak
from omniroute.admin.v1 import api_keys_pb2_grpc

from server.domain import access
from server.transport import convert
from server.transport.auth import KeyRing
from server.transport.status import Context, rpc
from server.transport.transactions import Transactions
from server.transport.validate import api_keys as validate


class ApiKeyServicer(api_keys_pb2_grpc.ApiKeyServiceServicer):
    def __init__(self, transactions: Transactions, keys: KeyRing, now_us: Callable[[], int]):
        self.tx = transactions
        self.keys = keys
        self.now_us = now_us

    @rpc
    async def CreateApiKey(
        self, request: ak.CreateApiKeyRequest, context: Context
    ) -> ak.CreateApiKeyResponse:
        now = self.now_us()
        role, tenant, description, expires_us = validate.create_api_key(request, now)
        secret, key = await asyncio.to_thread(
            access.issue, role, tenant, description, now, expires_us
        )
        await self.tx.write(lambda uow: uow.put_api_key(key))
        await self.keys.refresh()  # this server enforces auth from this call's answer on
        return ak.CreateApiKeyResponse(api_key=convert.api_key(key), key=secret)

    @rpc
    async def ListApiKeys(
        self, request: ak.ListApiKeysRequest, context: Context
    ) -> ak.ListApiKeysResponse:
        keys = await self.tx.query(lambda uow: uow.api_keys(), big=True)
        return ak.ListApiKeysResponse(api_keys=[convert.api_key(key) for key in keys])

    @rpc
    async def RevokeApiKey(
        self, request: ak.RevokeApiKeyRequest, context: Context
    ) -> ak.RevokeApiKeyResponse:
        key_id = validate.key_id(request)
        now = self.now_us()
        key = await self.tx.write(lambda uow: access.revoke(uow, key_id, now))
        await self.keys.refresh()
        return ak.RevokeApiKeyResponse(api_key=convert.api_key(key))
