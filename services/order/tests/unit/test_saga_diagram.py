"""The state diagram in docs is the transition table, row for row."""

import re

from order.saga import TRANSITIONS, mermaid_state_diagram


def test_every_table_row_is_one_transition_and_nothing_else() -> None:
    text = mermaid_state_diagram()
    arrows = re.findall(r"^    (\S+) --> (\S+) : (\S+)$", text, flags=re.MULTILINE)
    assert arrows[0] == ("[*]", "RESERVING_STOCK", "OrderPlaced")
    assert [(a, e, b) for a, b, e in arrows[1:]] == list(TRANSITIONS)


def test_is_a_fenced_mermaid_state_diagram() -> None:
    text = mermaid_state_diagram()
    assert text.startswith("```mermaid\nstateDiagram-v2\n")
    assert text.endswith("\n```")
