"""The Envoy ext_authz sidecar: local token verification, route scopes, pushed revocations."""

from .authorization import Authorizer
from .decision import Deny, Principal, Reason
from .requirements import Requirement, Rule
from .settings import Settings, SettingsError, from_env

__all__ = ["Authorizer", "Deny", "Principal", "Reason", "Requirement", "Rule", "Settings", "SettingsError", "from_env"]
