"""The committed diagrams under docs/generated are exactly what the code generates.

Changing a saga transition, a table column, a topic (or who publishes or consumes it), a domain
type or a contract's fields without running `make docs` fails here, so the diagrams cannot drift
from the code.
"""

import difflib
import importlib.util
import sys
from functools import cache
from types import ModuleType

import pytest

from shopdev.testing import repo_root

GENERATED = repo_root() / "docs" / "generated"
SCRIPTS = repo_root() / "scripts"


@cache
def docs_script() -> ModuleType:
    # docs.py imports its sibling modules, as it does when run as `python scripts/docs.py`.
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location("docs_script", SCRIPTS / "docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def expected() -> dict[str, str]:
    return docs_script().generated()


def _diff(committed: str, generated: str, name: str) -> str:
    lines = difflib.unified_diff(
        committed.splitlines(),
        generated.splitlines(),
        f"committed docs/generated/{name}",
        "what the code generates",
        lineterm="",
    )
    return "\n".join(list(lines)[:40])


@pytest.mark.parametrize("name", sorted(expected()))
def test_committed_diagram_matches_the_code(name: str) -> None:
    path = GENERATED / name
    assert path.is_file(), f"docs/generated/{name} is missing: run make docs and commit it"
    committed, generated = path.read_text(), expected()[name]
    assert committed == generated, (
        f"docs/generated/{name} is stale: run make docs and commit the diff\n"
        + _diff(committed, generated, name)
    )


def test_no_stale_files_in_docs_generated() -> None:
    known = set(expected()) | docs_script().OTHERS
    extra = sorted(p.name for p in GENERATED.iterdir() if p.name not in known)
    assert not extra, (
        f"docs/generated holds files the code no longer generates: {extra}; run make docs"
    )


def test_every_service_has_an_erd_and_the_saga_topics_and_classes_are_there() -> None:
    from shopdev.stack import SERVICES

    documents = {"topics.md", "saga.md", "classes.md"}
    assert {f"erd-{s.name}.md" for s in SERVICES} | documents == set(expected())
