"""The token service's tables (SQLAlchemy Core): the schema the Alembic migrations create.

Times are Unix seconds (floats for sub-second precision where it matters). Nothing secret is
stored in the clear: passwords are argon2id hashes, refresh tokens appear only as ``jti`` plus
the SHA-256 of the token, access tokens only as ``jti``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

from native_iam.limits import MAX_CLIENT_ID_LENGTH

__all__ = [
    "consents",
    "feed_counter",
    "identities",
    "lockouts",
    "metadata",
    "oauth_clients",
    "passwords",
    "policies",
    "revocations",
    "server_secrets",
    "short_lived",
    "signing_keys",
    "tokens",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: An identity. namespace '' = global. Deleting removes the row; its tokens keep identity_id and
#: identity_uid, so they can never come back to life under a later identity: ids are never reused
#: (AUTOINCREMENT on SQLite, a sequence on PostgreSQL), and a token counts only while its
#: identity_uid equals the row's ``uid`` (guards against an id that comes back anyway: a restored
#: table, a reset sequence).
identities = Table(
    "identities",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: Random, immutable, unique per identity row (hex of 16 random bytes): the identity's
    #: incarnation. A re-created identity of the same name gets a new one.
    Column("uid", String(32), nullable=False),
    Column("namespace", String(253), nullable=False, server_default=""),
    Column("name", String(253), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    #: When the identity was last disabled (its tokens issued at or before this are dead).
    Column("disabled_at", Float, nullable=True),
    #: Tokens of this identity issued (iat) at or before this instant are dead: its policy was
    #: narrowed then (the feed's POLICY_CHANGED cut-off). NULL: no cut-off.
    Column("policy_cutoff_at", Integer, nullable=True),
    UniqueConstraint("namespace", "name"),
    UniqueConstraint("uid"),
    # SQLite reuses the highest deleted INTEGER PRIMARY KEY without AUTOINCREMENT.
    sqlite_autoincrement=True,
)

#: Password authentication of an identity (argon2id PHC string).
passwords = Table(
    "passwords",
    metadata,
    Column("identity_id", Integer, ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True),
    Column("hash", String(255), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("updated_at", Float, nullable=False),
)

#: Scope policy of an identity: space-separated grants (exact scopes, ``prefix:*``, ``*``).
policies = Table(
    "policies",
    metadata,
    Column("identity_id", Integer, ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True),
    Column("grants", Text, nullable=False, server_default=""),
    Column("updated_at", Float, nullable=False),
)

#: Every issued token, by jti. ``token_hash`` (SHA-256, hex) only for refresh tokens.
tokens = Table(
    "tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("usage", String(16), nullable=False),
    #: NULL for a client's own token (client_credentials, ``sub_kind`` client; migration 0130):
    #: it names no identity, and ``namespace``/``identity`` are then empty.
    Column("identity_id", Integer, nullable=True),
    #: The identity's ``uid`` when the token was issued; NULL (never matches) for tokens that the
    #: migration could not attribute to the identity now holding their id.
    Column("identity_uid", String(32), nullable=True),
    Column("namespace", String(253), nullable=False),
    Column("identity", String(253), nullable=False),
    Column("client_id", String(MAX_CLIENT_ID_LENGTH), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("metadata", Text, nullable=False, server_default=""),
    Column("kid", String(128), nullable=False),
    Column("created_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False),
    #: 'active' | 'disabled'
    Column("state", String(16), nullable=False, server_default="active"),
    Column("family_id", String(64), nullable=True),
    Column("parent_jti", String(64), nullable=True),
    #: When a rotated refresh token was used (spent); NULL while it is usable.
    Column("spent_at", Float, nullable=True),
    Column("token_hash", String(64), nullable=True),
    Index(None, "namespace", "identity", "created_at"),
    Index(None, "identity_id"),
    Index(None, "family_id"),
    Index(None, "expires_at"),
)

#: Signing keys. ``private_pem`` holds the private key (PEM; raw bytes hex for HS256); keys that
#: came from NATIVE_IAM_SIGNING_KEYS_DIR are not stored here.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(128), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    #: In the JWKS from this instant.
    Column("publish_at", Float, nullable=False),
    #: Signs new tokens from this instant (publish_at + publish delay).
    Column("activate_at", Float, nullable=False),
    #: Stops signing at this instant (NULL: until replaced).
    Column("retire_at", Float, nullable=True),
    #: Leaves the JWKS at this instant (retire_at + the longest token lifetime).
    Column("expire_at", Float, nullable=True),
)

#: The revocation feed: strictly increasing ``sequence``, committed in sequence order because
#: every writer takes the next value from ``feed_counter`` (a row lock) in its own transaction.
revocations = Table(
    "revocations",
    metadata,
    Column("sequence", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("target", Integer, nullable=False),
    Column("reason", Integer, nullable=False),
    Column("jti", String(64), nullable=False, server_default=""),
    Column("namespace", String(253), nullable=False, server_default=""),
    Column("identity", String(253), nullable=False, server_default=""),
    Column("kid", String(128), nullable=False, server_default=""),
    Column("cutoff_unix", BigInteger, nullable=False, server_default="0"),
    Column("expires_unix", BigInteger, nullable=False),
    Column("lifted", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
    #: Target CLIENT (migration 0130): the OAuth client whose tokens the event is about.
    Column("client_id", String(MAX_CLIENT_ID_LENGTH), nullable=False, server_default=""),
    Index(None, "expires_unix"),
)

#: One row (id=1): the last sequence handed out. Updating it serializes event writers.
feed_counter = Table(
    "feed_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_sequence", BigInteger, nullable=False),
    #: Events at or below this were compacted away; a cursor older than it needs a snapshot.
    Column("compacted_through", BigInteger, nullable=False, server_default="0"),
)

#: Brute-force counters by key: 'identity:<len(ns)>:<ns>/<name>' or 'address:<ip>' ('address:<net>/64'
#: for IPv6); see token_service/lockout.py. Stale rows are pruned (token_service/prune.py).
lockouts = Table(
    "lockouts",
    metadata,
    Column("key", String(600), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", Float, nullable=False),
    Column("locked_until", Float, nullable=False),
    #: Attempts between their reservation and their verdict (migration 0003); ignored once
    #: ``pending_until`` has passed (their process died).
    Column("pending", Integer, nullable=False, server_default="0"),
    Column("pending_until", Float, nullable=False, server_default="0"),
)

#: Registered OAuth clients. ``grant_types`` space-separated; ``audiences`` a JSON array.
oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("auth_method", String(32), nullable=False),
    #: ``hmac-sha256$<hex>`` (NATIVE_IAM_CLIENT_SECRET_KEY); NULL for a public client.
    Column("secret_hash", String(128), nullable=True),
    Column("grant_types", Text, nullable=False),
    Column("audiences", Text, nullable=False, server_default="[]"),
    Column("access_token_ttl_s", Integer, nullable=True),
    Column("refresh_token_ttl_s", Integer, nullable=True),
    Column("rotate_refresh_tokens", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    #: The introspection permission (migration 0110): may introspect every token.
    Column("introspect_all_tokens", Boolean, nullable=False, server_default=false()),
    #: JSON arrays of exact-match URIs (migration 0150): authorization and RP-initiated logout.
    Column("redirect_uris", Text, nullable=False, server_default="[]"),
    Column("post_logout_redirect_uris", Text, nullable=False, server_default="[]"),
    #: The service's own application: no consent page (migration 0150).
    Column("first_party", Boolean, nullable=False, server_default=false()),
    #: The client's scope policy (migration 0130): space-separated grants, as ``policies.grants``.
    Column("scopes", Text, nullable=False, server_default=""),
    #: False: the client authenticates nowhere and its tokens are revoked (migration 0130).
    Column("enabled", Boolean, nullable=False, server_default=true()),
    #: JSON list: audiences the client may exchange a user's token for (RFC 8693; migration 0140).
    Column("exchange_audiences", Text, nullable=False, server_default="[]"),
)

#: Consent an identity gave a client at the authorization endpoint (migration 0150): the union
#: of the scopes it approved, space-separated. A request for a scope outside it asks again.
#: Bound to the identity's incarnation (``identity_uid``): a re-created identity of the same
#: name starts without consents. Deleted with the identity or the client.
consents = Table(
    "consents",
    metadata,
    Column("identity_id", Integer, ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "client_id",
        String(MAX_CLIENT_ID_LENGTH),
        ForeignKey("oauth_clients.client_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("identity_uid", String(32), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("granted_at", Float, nullable=False),
    Index(None, "client_id"),
)

#: Server-generated secrets that are not signing keys (hex), created once and shared by replicas.
server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)


#: Short-lived values (token_service/shortlived.py): codes, sessions, nonces, single-use jtis.
#: A row past ``expires_at`` is absent to every statement; pruning deletes it later.
short_lived = Table(
    "short_lived",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_short_lived_expires_at", "expires_at"),
)
