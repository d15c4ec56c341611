"""Environment variables documented where they are declared.

A settings dataclass declares each field with :func:`setting`, naming the variable that sets it
and what it means; ``python -m tools.docgen`` renders ``docs/configuration.md`` from these
declarations, and a test fails when the committed page and the code disagree. Variables that are
not a settings field (a CLI's) are declared as :class:`EnvVar` values beside the code reading them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["EnvVar", "documented", "setting"]

_KEY = "native_iam_env"


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One environment variable as the configuration page shows it."""

    name: str
    #: What it does (Markdown, one table cell).
    meaning: str
    #: How the default reads in the docs when the field's value is not it (e.g. "host name").
    shown_default: str | None = None
    #: The name this variable had before, still read (with a warning) for one release.
    was: str | None = None
    #: Why it was renamed (Markdown), shown beside the old name.
    why_renamed: str = ""


def setting(
    env: str,
    meaning: str,
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    shown_default: str | None = None,
    was: str | None = None,
    why_renamed: str = "",
    repr: bool = True,
) -> Any:
    """A dataclass field set by the environment variable ``env`` (read by the class's parser);
    ``was`` names a deprecated old name the parser still reads."""
    return dataclasses.field(
        default=default,
        default_factory=default_factory,
        repr=repr,
        metadata={_KEY: EnvVar(env, meaning, shown_default, was, why_renamed)},
    )


def documented(cls: type) -> list[tuple[dataclasses.Field[Any], EnvVar]]:
    """The fields of dataclass ``cls`` declared with :func:`setting`, in declaration order."""
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]
