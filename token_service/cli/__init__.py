"""The token service's commands: ``native-iam token-service`` (:mod:`token_service.cli.main`),
``native-iam admin`` (:mod:`token_service.cli.admin`, with ``admin clients`` in
:mod:`token_service.cli.clients`) and the first identities they create (:mod:`token_service.cli.bootstrap`).

``native-iam`` imports the command modules by name; other packages import only the bootstrap.
"""

from token_service.cli.bootstrap import DEMO_IDENTITY, DEMO_POLICY, bootstrap_admin, bootstrap_demo

__all__ = ["DEMO_IDENTITY", "DEMO_POLICY", "bootstrap_admin", "bootstrap_demo"]
