"""The class diagram finds a service's types by introspection, wherever its domain and saga
modules live, so the saga's and domain's own refactors show up in it without edits."""

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from shopdev.testing import repo_root

FILES = {
    "shop_demo/__init__.py": "",
    "shop_demo/domain.py": """
        from dataclasses import dataclass
        from enum import StrEnum
        from typing import Literal

        Status = Literal["OPEN", "DONE"]

        class Colour(StrEnum):
            RED = "red"
            BLUE = "blue"

        @dataclass(frozen=True)
        class Line:
            product_id: str
            quantity: int

        @dataclass
        class _Scratch:
            hidden: int
    """,
    "shop_demo/saga/__init__.py": "from shop_demo.saga.state import Saga, Started\n",
    "shop_demo/saga/state.py": """
        from collections.abc import Callable
        from dataclasses import dataclass
        from typing import Any, Generic, TypeVar

        from shop_demo.domain import Line, Status

        E = TypeVar("E")

        @dataclass(frozen=True)
        class Started:
            pass

        @dataclass(frozen=True)
        class Stopped:
            reason: str

        Event = Started | Stopped

        @dataclass(frozen=True)
        class Saga:
            order_id: str
            lines: tuple[Line, ...]
            status: Status = "OPEN"
            coupon: Line | None = None

        @dataclass(frozen=True)
        class On(Generic[E]):
            event: type[E]
            handler: Callable[[Saga, E], Saga]

        @dataclass(frozen=True)
        class Step:
            on: tuple[On[Any], ...]
    """,
    "shop_demo/store.py": """
        from dataclasses import dataclass

        @dataclass
        class Row:
            id: int
    """,
}


@pytest.fixture
def class_diagram(tmp_path: Path) -> Iterator[ModuleType]:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    scripts = str(repo_root() / "scripts")
    sys.path[:0] = [str(tmp_path), scripts]
    try:
        import class_diagram

        yield class_diagram
    finally:
        sys.path.remove(str(tmp_path))
        sys.path.remove(scripts)
        for module in [m for m in sys.modules if m.split(".")[0] == "shop_demo"]:
            del sys.modules[module]


def members(text: str, name: str) -> list[str]:
    body = text.split(f"    class {name} {{\n")[1].split("\n    }")[0]
    return [line.strip() for line in body.splitlines()]


def section(class_diagram: ModuleType) -> str:
    return class_diagram.class_diagram([("demo", "shop_demo")]).split("## Contracts")[0]


def test_domain_and_saga_modules_are_found_in_packages_too(class_diagram: ModuleType) -> None:
    names = [m.__name__ for m in class_diagram.domain_modules("shop_demo")]
    assert names == ["shop_demo.domain", "shop_demo.saga", "shop_demo.saga.state"]


def test_each_type_once_with_its_fields_values_and_links(class_diagram: ModuleType) -> None:
    text = section(class_diagram)
    assert "From `shop_demo.domain`, `shop_demo.saga`, `shop_demo.saga.state`." in text
    assert text.count("class Line {") == 1  # imported elsewhere, drawn where it is defined
    assert "class Started\n" in text  # no fields: no body, which mermaid would refuse
    assert members(text, "Saga") == [
        "str order_id",
        "tuple[Line, ...] lines",
        "Status status",
        "Line | None coupon",
    ]
    assert members(text, "Status") == ["<<enumeration>>", "OPEN", "DONE"]
    assert members(text, "Colour") == ["<<enumeration>>", "RED", "BLUE"]
    assert members(text, "Event") == ["<<union>>", "Started", "Stopped"]
    assert 'Saga --> "*" Line : lines' in text
    assert 'Saga --> "0..1" Line : coupon' in text
    assert 'Saga --> "1" Status : status' in text


def test_functions_and_class_objects_are_fields_not_links(class_diagram: ModuleType) -> None:
    text = section(class_diagram)
    assert members(text, "On") == ["type[E] event", "Callable[[Saga, E], Saga] handler"]
    assert 'Step --> "*" On : on' in text  # through the generic `On[Any]`
    assert "On -->" not in text


def test_private_types_and_other_modules_stay_out(class_diagram: ModuleType) -> None:
    text = section(class_diagram)
    assert "_Scratch" not in text
    assert "class Row" not in text


def test_classes_are_sorted_and_the_output_is_stable(class_diagram: ModuleType) -> None:
    text = section(class_diagram)
    classes = [line.split()[1] for line in text.splitlines() if line.startswith("    class ")]
    dataclasses_and_enums = classes[: classes.index("Event")]
    assert dataclasses_and_enums == sorted(dataclasses_and_enums)
    assert section(class_diagram) == text


def test_contracts_are_drawn_per_topic(class_diagram: ModuleType) -> None:
    text = class_diagram.class_diagram([])
    catalog_commands = text.split("### `catalog.commands`")[1].split("###")[0]
    assert "class ReserveStock {" in catalog_commands
    assert 'ReserveStock --> "*" StockLine : lines' in catalog_commands
    assert "class StockReserved" not in catalog_commands  # a reply, on catalog.replies
