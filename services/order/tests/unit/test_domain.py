"""Totals, the modify diff and refund splitting, with plain asserts."""

from order.domain import Debit, Line, plan_modify, split_refund, subtotal


def test_totals() -> None:
    lines = [Line("a", 2, 10_000), Line("b", 1, 5_000)]
    assert subtotal(lines) == 25_000


def test_modify_plan_diffs_lines() -> None:
    current = [Line("a", 2, 100), Line("b", 1, 50)]
    plan = plan_modify(current, [("a", 5), ("c", 1)])
    assert plan.more == (Line("a", 3), Line("c", 1))
    assert plan.fewer == (Line("b", 1, 50),)
    assert plan.lines == (Line("a", 5, 100), Line("c", 1))


def test_refund_splits_newest_debit_first() -> None:
    debits = [Debit("d1", 20_000), Debit("d2", 10_000, refunded=4_000)]
    assert [(d.operation_id, n) for d, n in split_refund(debits, 8_000)] == [
        ("d2", 6_000),
        ("d1", 2_000),
    ]
