"""README.md and docs/: the generated tables match the code, every variable the code names is
documented, and every link and repository path the pages mention exists."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from native_iam.envdoc import documented
from tools import docgen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
PRODUCT = ("native_iam", "token_service", "sidecar")
# A variable name as code writes it: a prefix, then at least one more character.
VARIABLE = re.compile(r"\b(?:NATIVE_IAM|SYSTEM)_[A-Z0-9_]*[A-Z0-9]\b")


def _product_sources() -> Iterator[Path]:
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if "_pb2" not in path.name:
                yield path


@pytest.mark.parametrize("page", docgen.PAGES, ids=lambda p: p.name)
def test_generated_tables_match_the_code(page: Path) -> None:
    """The tables `./dev docs` renders from the settings and metrics code are the committed ones."""
    text = page.read_text(encoding="utf-8")
    assert "<!-- generated: " in text
    assert docgen.render(text) == text, f"{page.relative_to(ROOT)} is stale: run ./dev docs"


def test_render_replaces_a_stale_table() -> None:
    """The drift check is not vacuous: an edited row is rendered back to what the code says."""
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    stale = page.replace("| `NATIVE_IAM_LEEWAY_S` | `30` |", "| `NATIVE_IAM_LEEWAY_S` | `31` |")
    assert stale != page and docgen.render(stale) == page


def test_every_variable_the_code_names_is_documented() -> None:
    """Each NATIVE_IAM_*/SYSTEM_* name in product code (read, set or mentioned) is on the configuration page."""
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    named = {name for path in _product_sources() for name in VARIABLE.findall(path.read_text(encoding="utf-8"))}
    assert "SYSTEM_DB_URL" in named
    assert sorted(name for name in named if f"`{name}`" not in page) == []


class _RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _read_and_documented(role: str) -> tuple[set[str], set[str], str]:
    env = _RecordingEnv()
    if role == "token-service":
        from token_service.settings import Settings

        Settings.from_env(env)
    else:
        from sidecar.settings import Settings, from_env

        from_env(env)
    rows = [var for _, var in documented(Settings)]
    names = {var.name for var in rows} | {var.was for var in rows if var.was}
    return env.asked, names, " ".join(var.meaning for var in rows)


@pytest.mark.parametrize("role", ["token-service", "sidecar"])
def test_settings_document_exactly_the_variables_they_read(role: str) -> None:
    """Each variable a role's from_env reads is a documented field, or the `_FILE` form a documented
    field's meaning names; and each documented field's variable is read."""
    read, rows, meanings = _read_and_documented(role)
    undocumented = {name for name in read - rows if not (name.endswith("_FILE") and f"`{name}`" in meanings)}
    assert rows and undocumented == set()
    assert rows - read == set()


def test_readme_is_short_and_leads_to_every_page() -> None:
    """The README stays an introduction, and each docs page is findable from it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert PAGES and [p.name for p in PAGES if f"](docs/{p.name})" not in readme] == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_links_resolve(page: Path) -> None:
    """Every relative link of a page names an existing file, and its #anchor an existing heading."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved)):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_repository_paths_exist(page: Path) -> None:
    """Every `path` a page quotes under one of the repository's top folders exists (docs follow moves)."""
    tops = "|".join((*PRODUCT, "tests", "deploy", "examples", "bench", "proto", "tools"))
    quoted = re.findall(rf"`((?:{tops})/[\w./-]*)`", page.read_text(encoding="utf-8"))
    assert [p for p in quoted if not (ROOT / p).exists()] == []


def test_sidecar_answers_table_is_what_the_decision_answers() -> None:
    """Each deny reason has a row in docs/sidecar.md's answers table naming its HTTP status and RFC 6750
    error as sidecar/decision.py's OUTCOMES does, and each is a label value docs/metrics.md lists."""
    from sidecar.decision import OUTCOMES, Reason

    page = (DOCS / "sidecar.md").read_text(encoding="utf-8")
    table = page[page.index("## Answers") :]
    table = table[: table.index("\n\n", table.index("|"))]
    rows: dict[str, tuple[set[int], set[str]]] = {}
    for line in (line for line in table.splitlines() if line.startswith("| `")):
        reasons, status, error = line.split(" | ")[:3]
        codes = {int(code) for code in re.findall(r"\b\d{3}\b", status)}
        errors = set(re.findall(r"`([a-z_]+)`", error)) | ({"none"} if error.startswith("none") else set())
        rows.update({reason: (codes, errors) for reason in re.findall(r"`([a-z_]+)`", reasons)})
    assert set(rows) == {reason.value for reason in Reason}
    for reason, outcome in OUTCOMES.items():
        codes, errors = rows[reason.value]
        assert outcome.http_status in codes and (outcome.error or "none") in errors, reason
    metrics = (DOCS / "metrics.md").read_text(encoding="utf-8")
    assert [reason.value for reason in Reason if f"`{reason.value}`" not in metrics] == []
