"""The saga's table, checked whole: every step is reachable and can be left, every event a step
takes has a source, every reply a step waits for has a handler, and the end is the end."""

from dataclasses import replace
from typing import get_args

import pytest

from contracts.catalog import StockReserved
from order.saga import TABLE, CancelRequested, ModifyRequested, advance
from order.saga.events import SOURCES, DeadlinePassed, Reply
from order.saga.state import ENDED, StepName
from order.saga.table import PROVIDER_STEPS, REPLIES, START, deadline_of

from .test_saga import NOW, paid, placed, reserved

PROVIDER = ("PROVIDER", "PROVIDER_AFTER_GRACE")


def replies_to(command: type) -> set[type]:
    return {event for event, source in SOURCES.items() if source is command}


def reachable() -> set[StepName]:
    seen, todo = {START}, [START]
    while todo:
        step = todo.pop()
        for row in TABLE[step].on:
            for to in set(row.to) - seen:
                seen.add(to)
                todo.append(to)
    return seen


def test_the_table_has_every_step_and_only_those() -> None:
    assert list(TABLE) == list(get_args(StepName))


def test_no_step_is_unreachable() -> None:
    assert reachable() == set(TABLE)


def test_every_next_step_exists_and_every_step_can_be_left() -> None:
    for name, step in TABLE.items():
        assert step.on, name
        for row in step.on:
            assert set(row.to) <= set(TABLE), (name, row.event.__name__, row.to)
        if name != "DONE":
            assert any(set(row.to) - {name} for row in step.on), f"{name} has no way out"


def test_every_reachable_step_handles_each_reply_it_waits_for() -> None:
    for name in reachable():
        step = TABLE[name]
        handled = {row.event for row in step.on}
        if step.sends is not None:
            assert replies_to(step.sends.command) <= handled, name
        if step.deadline == "REPLY":
            assert DeadlinePassed in handled and step.sends is not None, name


def test_every_handler_has_a_source() -> None:
    for name, step in TABLE.items():
        for row in step.on:
            source = SOURCES[row.event]
            where = (name, row.event.__name__)
            if source == "OWNER":
                assert name == "DONE", where
            elif source == "PROVIDER":
                assert step.deadline in PROVIDER, where
            elif source == "DEADLINE":
                assert step.deadline == "REPLY", where
            else:
                assert step.sends is not None and step.sends.command is source, where


def test_the_replies_to_subscribe_to_are_the_typed_replies() -> None:
    assert set(REPLIES) == set(get_args(Reply))
    assert all(isinstance(SOURCES[reply], type) for reply in REPLIES)


def test_provider_steps_are_driven_by_the_worker_not_by_replies() -> None:
    assert PROVIDER_STEPS == ("PAYING", "VOIDING_PAYMENT", "CANCEL_PAYMENT")
    for name in PROVIDER_STEPS:
        assert TABLE[name].sends is None and deadline_of(name) in PROVIDER


def test_done_is_terminal_for_an_ended_order() -> None:
    done = TABLE["DONE"]
    assert done.sends is None and done.deadline is None
    assert {SOURCES[row.event] for row in done.on} == {"OWNER"}
    for status in ENDED:
        ended = replace(paid(), status=status)
        for event in (CancelRequested(), ModifyRequested(items=(("p1", 1),))):
            assert not advance(ended, event, NOW).applied


def test_a_handler_cannot_lead_where_its_row_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    step = TABLE["RESERVING_STOCK"]
    narrowed = tuple(
        replace(row, to=("RESERVING_COUPON",)) if row.event is StockReserved else row
        for row in step.on
    )
    monkeypatch.setitem(TABLE, "RESERVING_STOCK", replace(step, on=narrowed))
    with pytest.raises(AssertionError, match="RESERVING_STOCK --StockReserved--> DEBITING"):
        advance(placed(), reserved(), NOW)
