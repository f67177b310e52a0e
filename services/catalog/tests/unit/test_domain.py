"""Pure catalog rules, plain asserts."""

from catalog.domain import (
    CATEGORIES,
    Status,
    Transition,
    capped_returns,
    escape_like,
    merge_lines,
    on_commit,
    on_release,
    short_products,
)


def test_lines_merge_per_product_in_id_order() -> None:
    assert merge_lines([("b", 1), ("a", 2), ("b", 3)]) == {"a": 2, "b": 4}
    assert list(merge_lines([("z", 1), ("a", 1), ("m", 1)])) == ["a", "m", "z"]


def test_short_products_are_those_that_cannot_cover_the_line() -> None:
    assert short_products({"a": 2, "b": 5, "c": 1}, {"a": 2, "b": 4}) == ["b", "c"]
    assert short_products({"a": 1}, {"a": 1}) == []


def test_returns_are_capped_at_what_the_order_holds_as_sold() -> None:
    assert capped_returns({"a": 3, "b": 2, "c": 1}, {"a": 5, "b": 1}) == {"a": 3, "b": 1}
    assert capped_returns({"a": 1}, {"a": 0}) == {}


def test_release_moves_only_reserved_units_and_voids_an_unknown_operation() -> None:
    assert on_release(Status.RESERVED) == Transition(Status.RELEASED, moves_stock=True)
    assert on_release(None) == Transition(Status.VOIDED, moves_stock=False)
    for status in (Status.COMMITTED, Status.RELEASED, Status.FAILED, Status.VOIDED):
        assert on_release(status) == Transition(status, moves_stock=False)


def test_commit_moves_reserved_units_once() -> None:
    assert on_commit(Status.RESERVED) == Transition(Status.COMMITTED, moves_stock=True)
    for status in (Status.COMMITTED, Status.RELEASED, Status.FAILED, Status.VOIDED):
        assert on_commit(status) == Transition(status, moves_stock=False)


def test_like_wildcards_are_taken_literally() -> None:
    assert escape_like("50%_off\\") == "50\\%\\_off\\\\"


def test_the_category_list_is_fixed_and_unique() -> None:
    codes = [code for code, _ in CATEGORIES]
    assert len(codes) == len(set(codes)) == 8 and "ELECTRONICS" in codes
