from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RevocationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_REASON_UNSPECIFIED: _ClassVar[RevocationReason]
    TOKEN_DISABLED: _ClassVar[RevocationReason]
    TOKEN_DELETED: _ClassVar[RevocationReason]
    IDENTITY_DISABLED: _ClassVar[RevocationReason]
    IDENTITY_DELETED: _ClassVar[RevocationReason]
    POLICY_CHANGED: _ClassVar[RevocationReason]
    KEY_RETIRED: _ClassVar[RevocationReason]
    REFRESH_TOKEN_REUSE: _ClassVar[RevocationReason]
    CLIENT_REVOKED: _ClassVar[RevocationReason]
    NAMESPACE_CUT: _ClassVar[RevocationReason]
    AUTHORIZATION_CODE_REUSE: _ClassVar[RevocationReason]
    CLIENT_DISABLED: _ClassVar[RevocationReason]
    CLIENT_DELETED: _ClassVar[RevocationReason]

class RevocationTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_TARGET_UNSPECIFIED: _ClassVar[RevocationTarget]
    TOKEN: _ClassVar[RevocationTarget]
    IDENTITY: _ClassVar[RevocationTarget]
    NAMESPACE: _ClassVar[RevocationTarget]
    KEY: _ClassVar[RevocationTarget]
    CLIENT: _ClassVar[RevocationTarget]
REVOCATION_REASON_UNSPECIFIED: RevocationReason
TOKEN_DISABLED: RevocationReason
TOKEN_DELETED: RevocationReason
IDENTITY_DISABLED: RevocationReason
IDENTITY_DELETED: RevocationReason
POLICY_CHANGED: RevocationReason
KEY_RETIRED: RevocationReason
REFRESH_TOKEN_REUSE: RevocationReason
CLIENT_REVOKED: RevocationReason
NAMESPACE_CUT: RevocationReason
AUTHORIZATION_CODE_REUSE: RevocationReason
CLIENT_DISABLED: RevocationReason
CLIENT_DELETED: RevocationReason
REVOCATION_TARGET_UNSPECIFIED: RevocationTarget
TOKEN: RevocationTarget
IDENTITY: RevocationTarget
NAMESPACE: RevocationTarget
KEY: RevocationTarget
CLIENT: RevocationTarget

class GetJwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetJwksResponse(_message.Message):
    __slots__ = ("jwks_json", "max_age_s")
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_S_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    max_age_s: int
    def __init__(self, jwks_json: _Optional[str] = ..., max_age_s: _Optional[int] = ...) -> None: ...

class WatchRevocationsRequest(_message.Message):
    __slots__ = ("cursor", "subscriber")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBER_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    subscriber: str
    def __init__(self, cursor: _Optional[int] = ..., subscriber: _Optional[str] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("sequence", "target", "reason", "jti", "namespace", "identity", "kid", "cutoff_unix", "expires_unix", "lifted", "client_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    JTI_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    KID_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_UNIX_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_FIELD_NUMBER: _ClassVar[int]
    LIFTED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    target: RevocationTarget
    reason: RevocationReason
    jti: str
    namespace: str
    identity: str
    kid: str
    cutoff_unix: int
    expires_unix: int
    lifted: bool
    client_id: str
    def __init__(self, sequence: _Optional[int] = ..., target: _Optional[_Union[RevocationTarget, str]] = ..., reason: _Optional[_Union[RevocationReason, str]] = ..., jti: _Optional[str] = ..., namespace: _Optional[str] = ..., identity: _Optional[str] = ..., kid: _Optional[str] = ..., cutoff_unix: _Optional[int] = ..., expires_unix: _Optional[int] = ..., lifted: _Optional[bool] = ..., client_id: _Optional[str] = ...) -> None: ...

class WatchRevocationsResponse(_message.Message):
    __slots__ = ("kind", "revocations", "cursor", "reset", "synced", "server_time_ms")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[WatchRevocationsResponse.Kind]
        SNAPSHOT: _ClassVar[WatchRevocationsResponse.Kind]
        EVENTS: _ClassVar[WatchRevocationsResponse.Kind]
        HEARTBEAT: _ClassVar[WatchRevocationsResponse.Kind]
    KIND_UNSPECIFIED: WatchRevocationsResponse.Kind
    SNAPSHOT: WatchRevocationsResponse.Kind
    EVENTS: WatchRevocationsResponse.Kind
    HEARTBEAT: WatchRevocationsResponse.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    SYNCED_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    kind: WatchRevocationsResponse.Kind
    revocations: _containers.RepeatedCompositeFieldContainer[Revocation]
    cursor: int
    reset: bool
    synced: bool
    server_time_ms: int
    def __init__(self, kind: _Optional[_Union[WatchRevocationsResponse.Kind, str]] = ..., revocations: _Optional[_Iterable[_Union[Revocation, _Mapping]]] = ..., cursor: _Optional[int] = ..., reset: _Optional[bool] = ..., synced: _Optional[bool] = ..., server_time_ms: _Optional[int] = ...) -> None: ...
