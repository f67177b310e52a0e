"""The hand-written sequence diagrams name the messages and topics that really exist.

Every arrow label's message must be in libs/contracts, on the topic the label names; notes may
also name the saga's internal events (checked against order.saga.TRANSITIONS). Every saga
command, reply and order event has to appear in some arrow, so a new message cannot go
undocumented.
"""

import re
from pathlib import Path

import pytest

from contracts import ALL_TOPICS, MESSAGE_TYPES
from order.saga import TRANSITIONS
from shopdev.testing import repo_root

DOCS = repo_root() / "docs"
ARROW = re.compile(r"^\s*[\w ]+?\s*(?:-{1,2}(?:>>|>|x|\)))\s*[+-]?[\w ]+?\s*:\s*(?P<label>.*)$")
CAMEL = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+\b")
TOPIC = re.compile(r"\b[a-z][a-z-]*\.[a-z][a-z-]*(?:\.dlt)?\b")
MESSAGE_ON_TOPIC = re.compile(r"\b(?P<message>[A-Z]\w+) on (?P<topic>[a-z][a-z-]*\.[a-z][a-z-]*)")
TOPICS = {t.name for t in ALL_TOPICS} | {t.dead_letter for t in ALL_TOPICS}
SAGA_EVENTS = {event for _, event, _ in TRANSITIONS}
# CamelCase words that are not messages: HTTP bodies of the public API (API.md's `UserCoupon`).
NOT_MESSAGES = {"UserCoupon"}
# Documented flows every one of these messages must appear in.
FLOW_TOPICS = ("commands", "replies", "order.events", "coupon.issue-requests")


def sequence_diagrams() -> list[tuple[str, list[str]]]:
    """(file name, lines) of every mermaid sequenceDiagram in the hand-written docs."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for block in re.findall(r"```mermaid\n(.*?)```", path.read_text(), flags=re.DOTALL):
            if block.lstrip().startswith("sequenceDiagram"):
                found.append((path.name, block.splitlines()))
    return found


def arrow_labels() -> list[tuple[str, str]]:
    return [
        (name, m["label"])
        for name, lines in sequence_diagrams()
        for line in lines
        if (m := ARROW.match(line))
    ]


def test_there_are_sequence_diagrams_with_arrows() -> None:
    names = {name for name, _ in sequence_diagrams()}
    assert "sequences.md" in names
    assert len(arrow_labels()) > 100


@pytest.mark.parametrize("name,label", arrow_labels())
def test_every_message_in_an_arrow_is_a_contract_on_its_topic(name: str, label: str) -> None:
    for word in set(CAMEL.findall(label)) - NOT_MESSAGES:
        assert word in MESSAGE_TYPES, f"{name}: {word!r} in {label!r} is not in libs/contracts"
    for topic in TOPIC.findall(label):
        assert topic in TOPICS, f"{name}: {topic!r} in {label!r} is not a topic in contracts"
    for m in MESSAGE_ON_TOPIC.finditer(label):
        actual = MESSAGE_TYPES[m["message"]].TOPIC.name
        assert m["topic"] == actual, f"{name}: {m['message']} travels on {actual}, not {m['topic']}"


def test_every_name_in_a_note_is_a_contract_or_a_saga_event() -> None:
    for name, lines in sequence_diagrams():
        for line in lines:
            if ARROW.match(line):
                continue
            for word in set(CAMEL.findall(line)) - NOT_MESSAGES:
                assert word in MESSAGE_TYPES or word in SAGA_EVENTS, (
                    f"{name}: {word!r} is neither in libs/contracts nor an event of order.saga"
                )
            for topic in TOPIC.findall(line):
                assert topic in TOPICS, f"{name}: {topic!r} is not a topic in contracts"


def test_every_saga_message_appears_in_some_arrow() -> None:
    drawn = {w for _, label in arrow_labels() for w in CAMEL.findall(label)}
    drawn |= {
        w
        for _, lines in sequence_diagrams()
        for line in lines
        for w in CAMEL.findall(line)
        if " on " in line  # "OrderFailed on order.events" in a note: published, not consumed
    }
    expected = {n for n, m in MESSAGE_TYPES.items() if any(t in m.TOPIC.name for t in FLOW_TOPICS)}
    assert expected <= drawn, f"messages no sequence diagram shows: {sorted(expected - drawn)}"


def test_the_extractors_see_what_they_should() -> None:
    assert ARROW.match("    O->>C: ReserveStock on catalog.commands")["label"] == (  # type: ignore[index]
        "ReserveStock on catalog.commands"
    )
    assert ARROW.match("    P--xO: 201 late") and ARROW.match("  A-)B: x")
    assert not ARROW.match("    Note over O: step PAYING")
    assert CAMEL.findall("POST /api/payments with Idempotency-Key, OrderPaid") == ["OrderPaid"]
    assert TOPIC.findall("GET /api/payments?order_id= on coupon.issue-requests") == [
        "coupon.issue-requests"
    ]
    assert Path(DOCS / "sequences.md").is_file()
