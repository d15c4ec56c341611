"""Reading the environment, for both roles: typed values, and errors that name the variable.

Each role's settings module builds its frozen ``Settings`` through one :class:`Env`; nothing else
reads ``os.environ``. The rules, the same for every variable of both roles:

- unset, or set to blank, means the default — except where blank has a meaning of its own: an
  optional listener, header or URL is *off* when blank (``blank="off"``), and a value that must
  be given is an error when blank (``blank="error"``);
- a bad value raises :class:`EnvError`, whose message starts with the variable's name;
- ``NAME_FILE`` may name a file holding a secret instead of ``NAME`` (a mounted Kubernetes Secret);
- a renamed variable is still read under its old name for one release, with one WARNING at
  start-up naming old and new (:meth:`Env.renamed`, :func:`warn_renamed`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

__all__ = ["Blank", "Env", "EnvError", "IPNetwork", "Renamed", "warn_renamed"]

T = TypeVar("T")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: What a variable set to blank means: its default, "off" (empty string), or an error.
Blank = Literal["default", "off", "error"]
#: (old name, new name, whether the new one was set as well).
Renamed = tuple[str, str, bool]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
#: Values of an optional listener that turn it off (blank too).
LISTENER_OFF = frozenset({"", "off", "none"})

log = logging.getLogger(__name__)


class EnvError(ValueError):
    """An environment variable has a value the process cannot use; the message starts with its name."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        super().__init__(f"{variable}: {problem}")


class Env:
    """Typed access to environment variables (default: ``os.environ``); every failure names the variable."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if env is None else env
        #: Old names read in place of their new ones, for :func:`warn_renamed` once logging is up.
        self.renames: list[Renamed] = []

    def raw(self, name: str) -> str | None:
        """The stripped value, or None when unset."""
        value = self.env.get(name)
        return None if value is None else value.strip()

    def renamed(self, new: str, old: str) -> str:
        """Which of ``new`` and its deprecated ``old`` name to read: ``new`` when it is set (it
        wins over both), else ``old`` when that is set; either way the use of ``old`` is noted."""
        new_set, old_set = self.raw(new) is not None, self.raw(old) is not None
        if old_set:
            self.renames.append((old, new, new_set))
        return old if old_set and not new_set else new

    def text(
        self, name: str, default: T, *, check: Callable[[str], str | None] | None = None, blank: Blank = "default"
    ) -> str | T:
        """Text; ``check`` returns why a (non-blank) value is bad, or None."""
        value = self.raw(name)
        if value is None or (value == "" and blank == "default"):
            return default
        if value == "":
            if blank == "error":
                raise EnvError(name, "must not be empty")
            return value
        if check is not None and (problem := check(value)):
            raise EnvError(name, problem)
        return value

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        """One of ``choices`` (case-insensitive)."""
        allowed = tuple(choices)
        value = (self.raw(name) or default).lower()
        if value not in allowed:
            raise EnvError(name, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    def integer(
        self, name: str, default: int, *, low: int | None = None, high: int | None = None, choices: tuple[int, ...] = ()
    ) -> int:
        value = self.raw(name)
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            raise EnvError(name, f"expected an integer, got {value!r}") from None
        if low is not None and number < low:
            raise EnvError(name, f"must be at least {low}, got {number}")
        if high is not None and number > high:
            raise EnvError(name, f"must be at most {high}, got {number}")
        if choices and number not in choices:
            raise EnvError(name, f"must be one of {', '.join(map(repr, choices))}, got {number}")
        return number

    def number(self, name: str, default: float, *, low: float | None = None) -> float:
        value = self.raw(name)
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            raise EnvError(name, f"expected a number, got {value!r}") from None
        if number != number or (low is not None and number < low):  # NaN compares unequal to itself
            raise EnvError(name, f"must be a number of at least {low}, got {value!r}")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = (self.raw(name) or "").lower()
        if not value:
            return default
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise EnvError(name, f"expected true or false, got {value!r}")

    def listen(self, name: str, default: str, *, optional: bool = False) -> str:
        """``HOST:PORT``. An optional listener is off when blank, ``off`` or ``none`` (see
        :func:`native_iam.runtime.listen.enabled`); a required one keeps its default when blank."""
        value = self.raw(name)
        if value is None or (value == "" and not optional):
            return default
        if optional and value.lower() in LISTENER_OFF:
            return value
        if problem := address_problem(value):
            raise EnvError(name, problem)
        return value

    def workers(self, name: str = "NATIVE_IAM_WORKERS", default: int = 1, *, per_cpu: bool) -> int:
        """Serving processes sharing the ports. ``per_cpu``: 0 means one per CPU, else 0 is refused."""
        count = self.integer(name, default, low=0 if per_cpu else 1)
        return count or (os.cpu_count() or 1)

    def directory(self, name: str) -> Path | None:
        value = self.raw(name)
        if not value:
            return None
        path = Path(value)
        if not path.is_dir():
            raise EnvError(name, f"{value!r} is not a directory")
        return path

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        """Comma- or space-separated CIDRs (a bare address is a /32 or /128)."""
        value = self.raw(name)
        if not value:
            return ()
        try:
            return tuple(ipaddress.ip_network(item, strict=False) for item in value.replace(",", " ").split())
        except ValueError as exc:
            raise EnvError(name, f"expected CIDRs such as 10.0.0.0/8, {exc}") from None

    def secret(self, name: str) -> str | None:
        """``NAME``, or the content of the file named by ``NAME_FILE`` (trailing newline dropped)."""
        direct = self.env.get(name)
        file_name = self.raw(f"{name}_FILE")
        if direct and direct.strip() and file_name:
            raise EnvError(name, f"set either {name} or {name}_FILE, not both")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").rstrip("\r\n") or None
            except (OSError, UnicodeDecodeError) as exc:
                raise EnvError(f"{name}_FILE", f"cannot read {file_name!r}: {exc.__class__.__name__}") from None
        return direct if direct and direct.strip() else None


def address_problem(value: str) -> str | None:
    """Why ``value`` is not ``HOST:PORT`` (None when it is)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"expected HOST:PORT, got {value!r}"
    return None


def warn_renamed(renames: Iterable[Renamed], logger: logging.Logger = log) -> None:
    """One WARNING per deprecated name still in use; call once logging is configured."""
    for old, new, both in renames:
        if both:
            logger.warning(
                f"{old} is deprecated and ignored: {new} is set; remove {old}", extra={"old": old, "new": new}
            )
        else:
            logger.warning(f"{old} is deprecated: rename it to {new}", extra={"old": old, "new": new})
