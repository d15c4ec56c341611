from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentityRef(_message.Message):
    __slots__ = ("namespace", "name")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Identity(_message.Message):
    __slots__ = ("namespace", "name", "enabled", "created_unix", "has_password", "password_enabled", "policy")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    HAS_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_ENABLED_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    enabled: bool
    created_unix: int
    has_password: bool
    password_enabled: bool
    policy: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., enabled: _Optional[bool] = ..., created_unix: _Optional[int] = ..., has_password: _Optional[bool] = ..., password_enabled: _Optional[bool] = ..., policy: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateIdentityRequest(_message.Message):
    __slots__ = ("namespace", "name", "password", "policy", "disabled")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    password: str
    policy: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., password: _Optional[str] = ..., policy: _Optional[_Iterable[str]] = ..., disabled: _Optional[bool] = ...) -> None: ...

class ListIdentitiesRequest(_message.Message):
    __slots__ = ("namespace", "page_size", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page_size: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIdentitiesResponse(_message.Message):
    __slots__ = ("identities", "next_page_token")
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    identities: _containers.RepeatedCompositeFieldContainer[Identity]
    next_page_token: str
    def __init__(self, identities: _Optional[_Iterable[_Union[Identity, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetIdentityEnabledRequest(_message.Message):
    __slots__ = ("identity", "enabled")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    identity: IdentityRef
    enabled: bool
    def __init__(self, identity: _Optional[_Union[IdentityRef, _Mapping]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class DeleteIdentityResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPasswordRequest(_message.Message):
    __slots__ = ("identity", "password", "disabled")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    identity: IdentityRef
    password: str
    disabled: bool
    def __init__(self, identity: _Optional[_Union[IdentityRef, _Mapping]] = ..., password: _Optional[str] = ..., disabled: _Optional[bool] = ...) -> None: ...

class SetPasswordEnabledRequest(_message.Message):
    __slots__ = ("identity", "enabled")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    identity: IdentityRef
    enabled: bool
    def __init__(self, identity: _Optional[_Union[IdentityRef, _Mapping]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetPasswordResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetPolicyRequest(_message.Message):
    __slots__ = ("identity", "policy")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    identity: IdentityRef
    policy: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, identity: _Optional[_Union[IdentityRef, _Mapping]] = ..., policy: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("jti", "usage", "namespace", "identity", "client_id", "scopes", "metadata", "created_unix", "expires_unix", "state", "family_id")
    JTI_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAMILY_ID_FIELD_NUMBER: _ClassVar[int]
    jti: str
    usage: str
    namespace: str
    identity: str
    client_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    metadata: str
    created_unix: int
    expires_unix: int
    state: str
    family_id: str
    def __init__(self, jti: _Optional[str] = ..., usage: _Optional[str] = ..., namespace: _Optional[str] = ..., identity: _Optional[str] = ..., client_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., metadata: _Optional[str] = ..., created_unix: _Optional[int] = ..., expires_unix: _Optional[int] = ..., state: _Optional[str] = ..., family_id: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("namespace", "identity", "page_size", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    identity: str
    page_size: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., identity: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens", "next_page_token")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    next_page_token: str
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetTokenEnabledRequest(_message.Message):
    __slots__ = ("jti", "enabled")
    JTI_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    jti: str
    enabled: bool
    def __init__(self, jti: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetTokenEnabledResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteTokenRequest(_message.Message):
    __slots__ = ("jti",)
    JTI_FIELD_NUMBER: _ClassVar[int]
    jti: str
    def __init__(self, jti: _Optional[str] = ...) -> None: ...

class DeleteTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KeyInfo(_message.Message):
    __slots__ = ("kid", "alg", "publish_unix", "activate_unix", "retire_unix", "expire_unix", "signing", "source")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_UNIX_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_UNIX_FIELD_NUMBER: _ClassVar[int]
    RETIRE_UNIX_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_UNIX_FIELD_NUMBER: _ClassVar[int]
    SIGNING_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    kid: str
    alg: str
    publish_unix: int
    activate_unix: int
    retire_unix: int
    expire_unix: int
    signing: bool
    source: str
    def __init__(self, kid: _Optional[str] = ..., alg: _Optional[str] = ..., publish_unix: _Optional[int] = ..., activate_unix: _Optional[int] = ..., retire_unix: _Optional[int] = ..., expire_unix: _Optional[int] = ..., signing: _Optional[bool] = ..., source: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...

class RotateKeyRequest(_message.Message):
    __slots__ = ("publish_delay_s",)
    PUBLISH_DELAY_S_FIELD_NUMBER: _ClassVar[int]
    publish_delay_s: int
    def __init__(self, publish_delay_s: _Optional[int] = ...) -> None: ...

class RotateKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: KeyInfo
    def __init__(self, key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class RetireKeyRequest(_message.Message):
    __slots__ = ("kid",)
    KID_FIELD_NUMBER: _ClassVar[int]
    kid: str
    def __init__(self, kid: _Optional[str] = ...) -> None: ...

class RetireKeyResponse(_message.Message):
    __slots__ = ("signing_key",)
    SIGNING_KEY_FIELD_NUMBER: _ClassVar[int]
    signing_key: KeyInfo
    def __init__(self, signing_key: _Optional[_Union[KeyInfo, _Mapping]] = ...) -> None: ...

class ClientRef(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class OAuthClient(_message.Message):
    __slots__ = ("client_id", "name", "token_endpoint_auth_method", "grant_types", "audiences", "access_token_ttl_s", "refresh_token_ttl_s", "rotate_refresh_tokens", "created_unix", "introspect_all_tokens", "scopes", "enabled", "redirect_uris", "post_logout_redirect_uris", "first_party", "require_pkce", "exchange_audiences")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ENDPOINT_AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    GRANT_TYPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_TTL_S_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_TTL_S_FIELD_NUMBER: _ClassVar[int]
    ROTATE_REFRESH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    INTROSPECT_ALL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URIS_FIELD_NUMBER: _ClassVar[int]
    POST_LOGOUT_REDIRECT_URIS_FIELD_NUMBER: _ClassVar[int]
    FIRST_PARTY_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_PKCE_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    name: str
    token_endpoint_auth_method: str
    grant_types: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    rotate_refresh_tokens: bool
    created_unix: int
    introspect_all_tokens: bool
    scopes: _containers.RepeatedScalarFieldContainer[str]
    enabled: bool
    redirect_uris: _containers.RepeatedScalarFieldContainer[str]
    post_logout_redirect_uris: _containers.RepeatedScalarFieldContainer[str]
    first_party: bool
    require_pkce: bool
    exchange_audiences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., name: _Optional[str] = ..., token_endpoint_auth_method: _Optional[str] = ..., grant_types: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., access_token_ttl_s: _Optional[int] = ..., refresh_token_ttl_s: _Optional[int] = ..., rotate_refresh_tokens: _Optional[bool] = ..., created_unix: _Optional[int] = ..., introspect_all_tokens: _Optional[bool] = ..., scopes: _Optional[_Iterable[str]] = ..., enabled: _Optional[bool] = ..., redirect_uris: _Optional[_Iterable[str]] = ..., post_logout_redirect_uris: _Optional[_Iterable[str]] = ..., first_party: _Optional[bool] = ..., require_pkce: _Optional[bool] = ..., exchange_audiences: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateClientRequest(_message.Message):
    __slots__ = ("client_id", "name", "token_endpoint_auth_method", "grant_types", "audiences", "access_token_ttl_s", "refresh_token_ttl_s", "rotate_refresh_tokens", "introspect_all_tokens", "scopes", "redirect_uris", "post_logout_redirect_uris", "first_party", "exchange_audiences")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ENDPOINT_AUTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    GRANT_TYPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_TTL_S_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_TTL_S_FIELD_NUMBER: _ClassVar[int]
    ROTATE_REFRESH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    INTROSPECT_ALL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URIS_FIELD_NUMBER: _ClassVar[int]
    POST_LOGOUT_REDIRECT_URIS_FIELD_NUMBER: _ClassVar[int]
    FIRST_PARTY_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    name: str
    token_endpoint_auth_method: str
    grant_types: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    rotate_refresh_tokens: bool
    introspect_all_tokens: bool
    scopes: _containers.RepeatedScalarFieldContainer[str]
    redirect_uris: _containers.RepeatedScalarFieldContainer[str]
    post_logout_redirect_uris: _containers.RepeatedScalarFieldContainer[str]
    first_party: bool
    exchange_audiences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., name: _Optional[str] = ..., token_endpoint_auth_method: _Optional[str] = ..., grant_types: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., access_token_ttl_s: _Optional[int] = ..., refresh_token_ttl_s: _Optional[int] = ..., rotate_refresh_tokens: _Optional[bool] = ..., introspect_all_tokens: _Optional[bool] = ..., scopes: _Optional[_Iterable[str]] = ..., redirect_uris: _Optional[_Iterable[str]] = ..., post_logout_redirect_uris: _Optional[_Iterable[str]] = ..., first_party: _Optional[bool] = ..., exchange_audiences: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateClientResponse(_message.Message):
    __slots__ = ("client", "client_secret")
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    client: OAuthClient
    client_secret: str
    def __init__(self, client: _Optional[_Union[OAuthClient, _Mapping]] = ..., client_secret: _Optional[str] = ...) -> None: ...

class ListClientsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListClientsResponse(_message.Message):
    __slots__ = ("clients",)
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    clients: _containers.RepeatedCompositeFieldContainer[OAuthClient]
    def __init__(self, clients: _Optional[_Iterable[_Union[OAuthClient, _Mapping]]] = ...) -> None: ...

class DeleteClientResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetClientScopesRequest(_message.Message):
    __slots__ = ("client_id", "scopes")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class SetClientEnabledRequest(_message.Message):
    __slots__ = ("client_id", "enabled")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    enabled: bool
    def __init__(self, client_id: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...

class SetClientRedirectUrisRequest(_message.Message):
    __slots__ = ("client_id", "redirect_uris", "post_logout_redirect_uris", "first_party")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URIS_FIELD_NUMBER: _ClassVar[int]
    POST_LOGOUT_REDIRECT_URIS_FIELD_NUMBER: _ClassVar[int]
    FIRST_PARTY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    redirect_uris: _containers.RepeatedScalarFieldContainer[str]
    post_logout_redirect_uris: _containers.RepeatedScalarFieldContainer[str]
    first_party: bool
    def __init__(self, client_id: _Optional[str] = ..., redirect_uris: _Optional[_Iterable[str]] = ..., post_logout_redirect_uris: _Optional[_Iterable[str]] = ..., first_party: _Optional[bool] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("namespace", "identity", "client_id", "scopes", "granted_unix")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    GRANTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    identity: str
    client_id: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    granted_unix: int
    def __init__(self, namespace: _Optional[str] = ..., identity: _Optional[str] = ..., client_id: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., granted_unix: _Optional[int] = ...) -> None: ...

class ListConsentsRequest(_message.Message):
    __slots__ = ("namespace", "identity", "client_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    identity: str
    client_id: str
    def __init__(self, namespace: _Optional[str] = ..., identity: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class ListConsentsResponse(_message.Message):
    __slots__ = ("consents",)
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ...) -> None: ...

class RevokeConsentRequest(_message.Message):
    __slots__ = ("namespace", "identity", "client_id")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    identity: str
    client_id: str
    def __init__(self, namespace: _Optional[str] = ..., identity: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class RevokeConsentResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: int
    def __init__(self, revoked: _Optional[int] = ...) -> None: ...
