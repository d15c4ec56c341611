"""Persistence, the only layer that speaks SQL (tests/token_service/test_layers.py checks it).

``db`` owns the engine, migrations and transactions; ``tables`` every table; one module per
aggregate owns each of its statements exactly once: ``identities`` (with passwords and
policies), ``tokens``, ``revocations`` (the feed's event log), ``keys``, ``lockouts``,
``clients``. Domain modules open a transaction and pass its connection to these functions.
"""

from token_service.store.db import Store, async_url

__all__ = ["Store", "async_url"]
