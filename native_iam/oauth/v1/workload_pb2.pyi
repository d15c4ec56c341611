from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetTokenRequest(_message.Message):
    __slots__ = ("audience", "scopes")
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    audience: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, audience: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTokenResponse(_message.Message):
    __slots__ = ("access_token", "token_type", "expires_in", "expires_at", "scopes", "audience")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audience: str
    def __init__(self, access_token: _Optional[str] = ..., token_type: _Optional[str] = ..., expires_in: _Optional[int] = ..., expires_at: _Optional[int] = ..., scopes: _Optional[_Iterable[str]] = ..., audience: _Optional[str] = ...) -> None: ...
