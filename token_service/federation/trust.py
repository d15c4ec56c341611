"""Which Kubernetes clusters the token service trusts, and which service account is which client.

The trust file (``NATIVE_IAM_CLUSTER_ISSUERS_FILE``, JSON) lists cluster issuers::

    {"issuers": [{
        "issuer": "https://kubernetes.default.svc.cluster.local",
        "jwks_file": "/etc/native-iam/cluster-jwks.json",
        "audience": "https://token-service.example",
        "clock_skew_s": 30,
        "single_use": false,
        "max_lifetime_s": 86400,
        "jwks_max_age_s": 3600,
        "service_accounts": {
            "system:serviceaccount:shop:checkout": "shop-checkout",
            "system:serviceaccount:shop:*": "shop-workloads"
        }
    }]}

Keys (only ``issuer`` and ``service_accounts`` are required):

* ``issuer``: the cluster's service-account issuer (kube-apiserver ``--service-account-issuer``),
  compared exactly with the assertion's ``iss``; unique in the file.
* Where the cluster's public keys come from, at most one of: ``jwks_file`` (a JWK Set on disk,
  e.g. ``kubectl get --raw /openid/v1/jwks``), ``jwks_uri`` (fetched over HTTP(S)), or
  ``discovery_url`` (OIDC discovery; its ``issuer`` must equal ``issuer`` and its ``jwks_uri`` is
  fetched). None of them: discovery at ``<issuer>/.well-known/openid-configuration``.
  ``ca_file``: PEM bundle that verifies the HTTPS server (the cluster CA), else the system's.
* ``audience``: what the assertion's ``aud`` must contain (the projected volume's ``audience``);
  default ``NATIVE_IAM_ISSUER``.
* ``clock_skew_s`` (default 30): leeway on ``exp``, ``nbf`` and ``iat``.
* ``single_use`` (default false): each assertion ``jti`` is accepted once (across replicas); a
  kubelet-projected token is reused until it is rotated, so turn this on only for callers that
  request a fresh token per use (TokenRequest).
* ``max_lifetime_s`` (default 86400): longest ``exp - iat`` accepted.
* ``jwks_max_age_s`` (default 3600): how long fetched keys are used; they are refetched after a
  quarter of it, and at once (at most every ``jwks_refetch_interval_s``, default 10) when an
  assertion names an unknown ``kid``.
* ``service_accounts``: subject → OAuth client id. A subject is
  ``system:serviceaccount:<namespace>:<name>`` or the pattern ``system:serviceaccount:<namespace>:*``
  (any service account of the namespace). **Precedence**: the exact subject first, then its
  namespace's pattern; anything else is an unknown service account. Several service accounts may
  map to one client; one subject (or pattern) maps to exactly one client (JSON objects cannot
  say it twice: a duplicate key is an error).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from native_iam.jws import parse_json
from native_iam.runtime.env import EnvError
from token_service.clients import ClientError, validate_client_id

__all__ = ["SETTING", "ClusterIssuer", "Trust", "load_trust", "parse_trust", "service_account"]

#: The setting the trust file comes from (errors name it).
SETTING: Final = "NATIVE_IAM_CLUSTER_ISSUERS_FILE"
#: ``system:serviceaccount:<namespace>:<name>``: Kubernetes names are DNS-1123 subdomains / labels.
_NAME = r"[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?"
_SUBJECT = re.compile(rf"system:serviceaccount:({_NAME}):({_NAME})")
_PATTERN = re.compile(rf"system:serviceaccount:({_NAME}):\*")
_KEYS: Final = frozenset(
    {
        "issuer",
        "jwks_file",
        "jwks_uri",
        "discovery_url",
        "ca_file",
        "audience",
        "clock_skew_s",
        "single_use",
        "max_lifetime_s",
        "jwks_max_age_s",
        "jwks_refetch_interval_s",
        "service_accounts",
    }
)


def service_account(subject: str) -> tuple[str, str] | None:
    """(namespace, name) of a ``system:serviceaccount:<namespace>:<name>`` subject, else None."""
    match = _SUBJECT.fullmatch(subject)
    return None if match is None else (match.group(1), match.group(2))


@dataclass(frozen=True, slots=True)
class ClusterIssuer:
    """One trusted cluster issuer (see the module docstring for each field)."""

    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_uri: str | None = None
    discovery_url: str | None = None
    ca_file: Path | None = None
    clock_skew_s: float = 30.0
    single_use: bool = False
    max_lifetime_s: int = 86400
    jwks_max_age_s: float = 3600.0
    jwks_refetch_interval_s: float = 10.0
    #: Exact subjects → client id.
    exact: Mapping[str, str] = field(default_factory=dict)
    #: Namespace (of a ``system:serviceaccount:<ns>:*`` pattern) → client id.
    namespaces: Mapping[str, str] = field(default_factory=dict)

    def client_for(self, subject: str) -> str | None:
        """The client id ``subject`` maps to (exact first, then its namespace pattern), or None."""
        if subject in self.exact:
            return self.exact[subject]
        parsed = service_account(subject)
        return None if parsed is None else self.namespaces.get(parsed[0])


@dataclass(frozen=True, slots=True)
class Trust:
    """Every trusted issuer, by ``iss``."""

    issuers: Mapping[str, ClusterIssuer] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.issuers)


def _problem(message: str) -> EnvError:
    return EnvError(SETTING, message)


def _url(value: Any, what: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in {"http", "https"} or not urlsplit(value).netloc:
        raise _problem(f"{what} must be an http(s) URL")
    return value


def _number(entry: Mapping[str, Any], key: str, default: float, low: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise _problem(f"{key} of {entry['issuer']!r} must be a number ≥ {low}")
    return float(value)


def _mappings(issuer: str, value: Any) -> tuple[dict[str, str], dict[str, str]]:
    if not isinstance(value, dict) or not value:
        raise _problem(f"service_accounts of {issuer!r} must be a non-empty object")
    exact: dict[str, str] = {}
    namespaces: dict[str, str] = {}
    for subject, client_id in value.items():
        try:
            validate_client_id(client_id if isinstance(client_id, str) else "")
        except ClientError:
            raise _problem(f"{subject!r} of {issuer!r} must map to a client id") from None
        if service_account(subject) is not None:
            exact[subject] = client_id
        elif (match := _PATTERN.fullmatch(subject)) is not None:
            namespaces[match.group(1)] = client_id
        else:
            raise _problem(
                f"{subject!r} of {issuer!r} is neither system:serviceaccount:<namespace>:<name> nor"
                " system:serviceaccount:<namespace>:*"
            )
    return exact, namespaces


def _issuer(entry: Any, default_audience: str, base: Path) -> ClusterIssuer:
    if not isinstance(entry, dict) or not isinstance(entry.get("issuer"), str) or not entry["issuer"]:
        raise _problem("each issuer needs an `issuer` string")
    issuer = entry["issuer"]
    unknown = set(entry) - _KEYS
    if unknown:
        raise _problem(f"unknown key(s) for {issuer!r}: {', '.join(sorted(unknown))}")
    sources = [k for k in ("jwks_file", "jwks_uri", "discovery_url") if k in entry]
    if len(sources) > 1:
        raise _problem(f"{issuer!r}: give at most one of jwks_file, jwks_uri, discovery_url")
    jwks_file = ca_file = None
    if "jwks_file" in entry:
        jwks_file = base / str(entry["jwks_file"])
        if not jwks_file.is_file():
            raise _problem(f"jwks_file of {issuer!r} does not exist: {jwks_file}")
    if "ca_file" in entry:
        ca_file = base / str(entry["ca_file"])
        if not ca_file.is_file():
            raise _problem(f"ca_file of {issuer!r} does not exist: {ca_file}")
    discovery = None
    if jwks_file is None and "jwks_uri" not in entry:
        default = issuer.rstrip("/") + "/.well-known/openid-configuration"
        discovery = _url(entry.get("discovery_url", default), f"the discovery URL of {issuer!r}")
    audience = entry.get("audience", default_audience)
    if not isinstance(audience, str) or not audience:
        raise _problem(f"audience of {issuer!r} must be a non-empty string")
    single_use = entry.get("single_use", False)
    if not isinstance(single_use, bool):
        raise _problem(f"single_use of {issuer!r} must be true or false")
    exact, namespaces = _mappings(issuer, entry.get("service_accounts"))
    return ClusterIssuer(
        issuer=issuer,
        audience=audience,
        jwks_file=jwks_file,
        jwks_uri=_url(entry["jwks_uri"], f"jwks_uri of {issuer!r}") if "jwks_uri" in entry else None,
        discovery_url=discovery,
        ca_file=ca_file,
        clock_skew_s=_number(entry, "clock_skew_s", 30.0, 0),
        single_use=single_use,
        max_lifetime_s=int(_number(entry, "max_lifetime_s", 86400, 1)),
        jwks_max_age_s=_number(entry, "jwks_max_age_s", 3600.0, 1),
        jwks_refetch_interval_s=_number(entry, "jwks_refetch_interval_s", 10.0, 0),
        exact=exact,
        namespaces=namespaces,
    )


def parse_trust(text: str, default_audience: str, base: Path = Path()) -> Trust:
    """The trust configuration in ``text`` (relative file paths against ``base``); raises
    :class:`~native_iam.runtime.env.EnvError` naming the setting and the problem."""
    try:
        document = parse_json(text.encode("utf-8"))
    except ValueError as exc:
        raise _problem(f"not a JSON object without duplicate keys: {exc}") from None
    entries = document.get("issuers")
    if set(document) != {"issuers"} or not isinstance(entries, list):
        raise _problem('expected {"issuers": [...]}')
    issuers: dict[str, ClusterIssuer] = {}
    for entry in entries:
        parsed = _issuer(entry, default_audience, base)
        if parsed.issuer in issuers:
            raise _problem(f"issuer {parsed.issuer!r} is listed twice")
        issuers[parsed.issuer] = parsed
    return Trust(issuers)


def load_trust(path: Path | None, default_audience: str) -> Trust:
    """The trust file at ``path`` (None: no cluster is trusted)."""
    if path is None:
        return Trust()
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _problem(f"cannot read {path}: {exc}") from None
    return parse_trust(text, default_audience, path.parent)


def dumps(document: Mapping[str, Any]) -> str:
    """A trust document as the JSON this module reads (tests and examples write it)."""
    return json.dumps(document, indent=2)
