from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTokenWithPasswordRequest(_message.Message):
    __slots__ = ("namespace", "identity", "password", "metadata", "scopes")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    identity: str
    password: str
    metadata: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, namespace: _Optional[str] = ..., identity: _Optional[str] = ..., password: _Optional[str] = ..., metadata: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateTokenWithPasswordResponse(_message.Message):
    __slots__ = ("status", "access_token", "refresh_token", "expires_in", "scopes")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[CreateTokenWithPasswordResponse.Status]
        OK: _ClassVar[CreateTokenWithPasswordResponse.Status]
        CREDENTIALS_INVALID: _ClassVar[CreateTokenWithPasswordResponse.Status]
        IDENTITY_NOT_ACTIVE: _ClassVar[CreateTokenWithPasswordResponse.Status]
        UNAUTHORIZED: _ClassVar[CreateTokenWithPasswordResponse.Status]
    STATUS_UNSPECIFIED: CreateTokenWithPasswordResponse.Status
    OK: CreateTokenWithPasswordResponse.Status
    CREDENTIALS_INVALID: CreateTokenWithPasswordResponse.Status
    IDENTITY_NOT_ACTIVE: CreateTokenWithPasswordResponse.Status
    UNAUTHORIZED: CreateTokenWithPasswordResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    status: CreateTokenWithPasswordResponse.Status
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[_Union[CreateTokenWithPasswordResponse.Status, str]] = ..., access_token: _Optional[str] = ..., refresh_token: _Optional[str] = ..., expires_in: _Optional[int] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class RefreshTokenRequest(_message.Message):
    __slots__ = ("refresh_token",)
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refresh_token: str
    def __init__(self, refresh_token: _Optional[str] = ...) -> None: ...

class RefreshTokenResponse(_message.Message):
    __slots__ = ("status", "access_token", "expires_in", "scopes", "refresh_token")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[RefreshTokenResponse.Status]
        OK: _ClassVar[RefreshTokenResponse.Status]
        TOKEN_INVALID: _ClassVar[RefreshTokenResponse.Status]
        TOKEN_NOT_FOUND: _ClassVar[RefreshTokenResponse.Status]
        TOKEN_DISABLED: _ClassVar[RefreshTokenResponse.Status]
        TOKEN_EXPIRED: _ClassVar[RefreshTokenResponse.Status]
        TOKEN_IS_NOT_REFRESH_TOKEN: _ClassVar[RefreshTokenResponse.Status]
        IDENTITY_NOT_FOUND: _ClassVar[RefreshTokenResponse.Status]
        IDENTITY_NOT_ACTIVE: _ClassVar[RefreshTokenResponse.Status]
        IDENTITY_UNAUTHENTICATED: _ClassVar[RefreshTokenResponse.Status]
    STATUS_UNSPECIFIED: RefreshTokenResponse.Status
    OK: RefreshTokenResponse.Status
    TOKEN_INVALID: RefreshTokenResponse.Status
    TOKEN_NOT_FOUND: RefreshTokenResponse.Status
    TOKEN_DISABLED: RefreshTokenResponse.Status
    TOKEN_EXPIRED: RefreshTokenResponse.Status
    TOKEN_IS_NOT_REFRESH_TOKEN: RefreshTokenResponse.Status
    IDENTITY_NOT_FOUND: RefreshTokenResponse.Status
    IDENTITY_NOT_ACTIVE: RefreshTokenResponse.Status
    IDENTITY_UNAUTHENTICATED: RefreshTokenResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    REFRESH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    status: RefreshTokenResponse.Status
    access_token: str
    expires_in: int
    scopes: _containers.RepeatedScalarFieldContainer[str]
    refresh_token: str
    def __init__(self, status: _Optional[_Union[RefreshTokenResponse.Status, str]] = ..., access_token: _Optional[str] = ..., expires_in: _Optional[int] = ..., scopes: _Optional[_Iterable[str]] = ..., refresh_token: _Optional[str] = ...) -> None: ...

class CheckAccessRequest(_message.Message):
    __slots__ = ("access_token", "scopes")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, access_token: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckAccessResponse(_message.Message):
    __slots__ = ("status", "message", "identity", "namespace", "scopes")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[CheckAccessResponse.Status]
        OK: _ClassVar[CheckAccessResponse.Status]
        TOKEN_INVALID: _ClassVar[CheckAccessResponse.Status]
        TOKEN_NOT_FOUND: _ClassVar[CheckAccessResponse.Status]
        TOKEN_DISABLED: _ClassVar[CheckAccessResponse.Status]
        TOKEN_EXPIRED: _ClassVar[CheckAccessResponse.Status]
        UNAUTHORIZED: _ClassVar[CheckAccessResponse.Status]
    STATUS_UNSPECIFIED: CheckAccessResponse.Status
    OK: CheckAccessResponse.Status
    TOKEN_INVALID: CheckAccessResponse.Status
    TOKEN_NOT_FOUND: CheckAccessResponse.Status
    TOKEN_DISABLED: CheckAccessResponse.Status
    TOKEN_EXPIRED: CheckAccessResponse.Status
    UNAUTHORIZED: CheckAccessResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    status: CheckAccessResponse.Status
    message: str
    identity: str
    namespace: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[_Union[CheckAccessResponse.Status, str]] = ..., message: _Optional[str] = ..., identity: _Optional[str] = ..., namespace: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...
