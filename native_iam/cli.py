"""The ``native-iam`` console entry point: one command, a subcommand per role.

Each role's module is imported only when its subcommand runs, so ``native-iam sidecar`` does not
load the token service's database stack.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "token-service": ("token_service.cli.main", "run the central token service (gRPC, HTTP, metrics)"),
    "sidecar": ("sidecar.cli", "run the Envoy ext_authz sidecar beside a workload"),
    "admin": ("token_service.cli.admin", "manage identities, passwords, policies, clients, tokens, keys"),
    "demo": ("native_iam.demo", "run token service + sidecar + Envoy + a sample upstream locally"),
}


def _usage() -> str:
    lines = ["usage: native-iam COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'native-iam COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"native-iam: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
