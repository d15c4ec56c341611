"""The admin gRPC ``Clients`` service: register, read, list, delete, enable/disable OAuth clients,
set their scope policy (the domain: :mod:`token_service.admin.clients`) and redirect URIs, and
list and revoke the consents users gave them.

Same edge as the rest of the admin API (:mod:`token_service.api.grpc.admin`): every call is
authorized with an ``iam:admin`` bearer token first, errors are translated by the shared
:func:`token_service.api.grpc.edge.unary` wrapper, and every change is logged with its actor.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import trace

from native_iam.admin.v1 import admin_pb2 as pb
from native_iam.limits import (
    MAX_AUDIENCE_BYTES,
    MAX_AUDIENCES,
    MAX_CLIENT_ID_LENGTH,
    MAX_CLIENT_NAME_BYTES,
    MAX_NAME_BYTES,
    MAX_POLICY_ENTRIES,
    MAX_REDIRECT_URIS,
    MAX_SCOPE_LENGTH,
)
from token_service import clients, consents
from token_service.admin import clients as client_admin
from token_service.admin.service import validate_grants
from token_service.api.grpc.admin import audited, authorize
from token_service.api.grpc.edge import Methods, text_field, unary_handlers
from token_service.clients import GrantType, OAuthClient
from token_service.core import Core
from token_service.errors import InvalidRequest
from token_service.metrics import Metrics

__all__ = ["CLIENTS_SERVICE", "client_admin_handlers"]


CLIENTS_SERVICE = pb.DESCRIPTOR.services_by_name["Clients"].full_name


def _client(client: OAuthClient) -> pb.OAuthClient:
    return pb.OAuthClient(
        client_id=client.client_id,
        name=client.name,
        token_endpoint_auth_method=client.auth_method.value,
        grant_types=sorted(g.value for g in client.grant_types),
        audiences=list(client.audiences),
        access_token_ttl_s=client.access_token_ttl_s or 0,
        refresh_token_ttl_s=client.refresh_token_ttl_s or 0,
        rotate_refresh_tokens=client.rotate_refresh_tokens,
        introspect_all_tokens=client.introspect_all_tokens,
        redirect_uris=list(client.redirect_uris),
        post_logout_redirect_uris=list(client.post_logout_redirect_uris),
        first_party=client.first_party,
        require_pkce=True,  # not a setting: every client, always (OAuth 2.1)
        exchange_audiences=list(client.exchange_audiences),
        created_unix=client.created_at,
        scopes=list(client.scopes),
        enabled=client.enabled,
    )


def _redirects(redirect_uris: Any, post_logout_redirect_uris: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if len(redirect_uris) > MAX_REDIRECT_URIS or len(post_logout_redirect_uris) > MAX_REDIRECT_URIS:
        raise InvalidRequest(f"at most {MAX_REDIRECT_URIS} redirect URIs per list")
    try:
        return clients.browser_redirects(redirect_uris, post_logout_redirect_uris)
    except clients.ClientError as exc:
        raise InvalidRequest(str(exc)) from None


def _client_id(value: str) -> str:
    try:
        return clients.validate_client_id(text_field("client_id", value, MAX_CLIENT_ID_LENGTH, required=True))
    except clients.ClientError as exc:
        raise InvalidRequest(str(exc)) from None


def _scopes(values: Any) -> tuple[str, ...]:
    """A scope policy from the wire: bounded before the grammar check (admin.validate_grants)."""
    if len(values) > MAX_POLICY_ENTRIES:
        raise InvalidRequest(f"scopes: at most {MAX_POLICY_ENTRIES}")
    return validate_grants(text_field("scopes", v, MAX_SCOPE_LENGTH) for v in values)


def _ttl(name: str, value: int) -> int | None:
    if value < 0:
        raise InvalidRequest(f"{name} must not be negative")
    return value or None


class ClientsServicer:
    def __init__(self, core: Core, metrics: Metrics | None) -> None:
        # The clients and their secret key live in the Core (loaded by Core.start), not in the
        # HTTP server: this service answers whether or not the HTTP side has started.
        self.core = core
        self.metrics = metrics

    async def _caller(self, context: grpc.aio.ServicerContext, action: str, client_id: str) -> None:
        await audited(self.core, context, self.metrics, action, client_id=client_id)

    async def CreateClient(self, request: pb.CreateClientRequest, context: Any) -> pb.CreateClientResponse:
        await self._caller(context, "create_client", request.client_id[:MAX_CLIENT_ID_LENGTH])
        for name, values in (("audiences", request.audiences), ("exchange_audiences", request.exchange_audiences)):
            if len(values) > MAX_AUDIENCES:
                raise InvalidRequest(f"{name}: at most {MAX_AUDIENCES}")
            for audience in values:
                text_field(name, audience, MAX_AUDIENCE_BYTES)
        client_id = _client_id(request.client_id)
        if client_id == self.core.settings.grpc_client_id:
            # Tokens with this client_id are the gRPC API's; a registered namesake would let
            # either side refresh the other's refresh tokens.
            raise InvalidRequest(f"client_id {client_id!r} is NATIVE_IAM_GRPC_CLIENT_ID, the gRPC API's own")
        redirects, logout_redirects = _redirects(request.redirect_uris, request.post_logout_redirect_uris)
        try:
            client, secret = clients.new_client(
                client_id,
                auth_method=request.token_endpoint_auth_method or clients.AuthMethod.CLIENT_SECRET_BASIC,
                server_key=self.core.client_secret_key,
                name=text_field("name", request.name, MAX_CLIENT_NAME_BYTES),
                grant_types=request.grant_types or (GrantType.PASSWORD, GrantType.REFRESH_TOKEN),
                audiences=request.audiences,
                access_token_ttl_s=_ttl("access_token_ttl_s", request.access_token_ttl_s),
                refresh_token_ttl_s=_ttl("refresh_token_ttl_s", request.refresh_token_ttl_s),
                rotate_refresh_tokens=(
                    request.rotate_refresh_tokens if request.HasField("rotate_refresh_tokens") else None
                ),
                introspect_all_tokens=request.introspect_all_tokens,
                scopes=_scopes(request.scopes),
                redirect_uris=redirects,
                post_logout_redirect_uris=logout_redirects,
                first_party=request.first_party,
                exchange_audiences=request.exchange_audiences,
            )
        except clients.ClientError as exc:
            raise InvalidRequest(str(exc)) from None
        created = await client_admin.create_client(self.core, client)
        return pb.CreateClientResponse(client=_client(created), client_secret=secret or "")

    async def GetClient(self, request: pb.ClientRef, context: Any) -> pb.OAuthClient:
        await authorize(self.core, context, self.metrics)
        return _client(await self.core.clients.get(_client_id(request.client_id)))

    async def ListClients(self, request: pb.ListClientsRequest, context: Any) -> pb.ListClientsResponse:
        await authorize(self.core, context, self.metrics)
        return pb.ListClientsResponse(clients=[_client(c) for c in await self.core.clients.list()])

    async def DeleteClient(self, request: pb.ClientRef, context: Any) -> pb.DeleteClientResponse:
        await self._caller(context, "delete_client", request.client_id[:MAX_CLIENT_ID_LENGTH])
        await client_admin.delete_client(self.core, _client_id(request.client_id))
        return pb.DeleteClientResponse()

    async def SetClientScopes(self, request: pb.SetClientScopesRequest, context: Any) -> pb.OAuthClient:
        await self._caller(context, "set_client_scopes", request.client_id[:MAX_CLIENT_ID_LENGTH])
        client_id = _client_id(request.client_id)
        return _client(await client_admin.set_client_scopes(self.core, client_id, _scopes(request.scopes)))

    async def SetClientEnabled(self, request: pb.SetClientEnabledRequest, context: Any) -> pb.OAuthClient:
        action = "enable_client" if request.enabled else "disable_client"
        await self._caller(context, action, request.client_id[:MAX_CLIENT_ID_LENGTH])
        client_id = _client_id(request.client_id)
        return _client(await client_admin.set_client_enabled(self.core, client_id, request.enabled))

    async def SetClientRedirectUris(self, request: pb.SetClientRedirectUrisRequest, context: Any) -> pb.OAuthClient:
        await self._caller(context, "set_client_redirect_uris", request.client_id[:MAX_CLIENT_ID_LENGTH])
        client_id = _client_id(request.client_id)
        redirects, logout_redirects = _redirects(request.redirect_uris, request.post_logout_redirect_uris)
        current = await self.core.clients.get(client_id)
        if current.allows(GrantType.AUTHORIZATION_CODE) and not redirects:
            raise InvalidRequest("the authorization_code grant needs at least one redirect URI")
        updated = await self.core.clients.set_browser_settings(
            client_id,
            redirect_uris=redirects,
            post_logout_redirect_uris=logout_redirects,
            first_party=request.first_party if request.HasField("first_party") else None,
        )
        return _client(updated)

    async def ListConsents(self, request: pb.ListConsentsRequest, context: Any) -> pb.ListConsentsResponse:
        await authorize(self.core, context, self.metrics)
        found = await consents.list_consents(
            self.core,
            namespace=text_field("namespace", request.namespace, MAX_NAME_BYTES)
            if request.HasField("namespace")
            else None,
            identity=text_field("identity", request.identity, MAX_NAME_BYTES) if request.HasField("identity") else None,
            client_id=_client_id(request.client_id) if request.client_id else None,
        )
        return pb.ListConsentsResponse(
            consents=[
                pb.Consent(
                    namespace=c.namespace,
                    identity=c.identity,
                    client_id=c.client_id,
                    scopes=list(c.scopes),
                    granted_unix=int(c.granted_at),
                )
                for c in found
            ]
        )

    async def RevokeConsent(self, request: pb.RevokeConsentRequest, context: Any) -> pb.RevokeConsentResponse:
        await self._caller(context, "revoke_consent", request.client_id[:MAX_CLIENT_ID_LENGTH])
        revoked = await consents.revoke(
            self.core,
            namespace=text_field("namespace", request.namespace, MAX_NAME_BYTES),
            identity=text_field("identity", request.identity, MAX_NAME_BYTES, required=True),
            client_id=_client_id(request.client_id) if request.client_id else None,
        )
        return pb.RevokeConsentResponse(revoked=revoked)


_METHODS: Methods = {
    "CreateClient": (pb.CreateClientRequest, pb.CreateClientResponse),
    "GetClient": (pb.ClientRef, pb.OAuthClient),
    "ListClients": (pb.ListClientsRequest, pb.ListClientsResponse),
    "DeleteClient": (pb.ClientRef, pb.DeleteClientResponse),
    "SetClientScopes": (pb.SetClientScopesRequest, pb.OAuthClient),
    "SetClientEnabled": (pb.SetClientEnabledRequest, pb.OAuthClient),
    "SetClientRedirectUris": (pb.SetClientRedirectUrisRequest, pb.OAuthClient),
    "ListConsents": (pb.ListConsentsRequest, pb.ListConsentsResponse),
    "RevokeConsent": (pb.RevokeConsentRequest, pb.RevokeConsentResponse),
}


def client_admin_handlers(
    core: Core, metrics: Metrics | None, tracer: trace.Tracer | None = None
) -> list[grpc.GenericRpcHandler]:
    """The generic handler of ``native_iam.admin.v1.Clients``."""
    return unary_handlers(ClientsServicer(core, metrics), {CLIENTS_SERVICE: _METHODS}, metrics, tracer)
