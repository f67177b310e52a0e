"""Pure coupon rules: discounts, expiry, usability, terms."""

from datetime import UTC, datetime, timedelta

from coupon import domain
from coupon.domain import Holding, Terms

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def holding(**changes: object) -> Holding:
    values: dict[str, object] = {
        "user_id": "u1",
        "status": "ISSUED",
        "expires_at": NOW + timedelta(days=1),
        "order_id": None,
    }
    return Holding(**(values | changes))  # type: ignore[arg-type]


def usable(h: Holding | None, terms: Terms = Terms("FIXED", 1_000), **kw: object) -> str | None:
    args: dict[str, object] = {"user_id": "u1", "order_id": "o1", "subtotal": 10_000, "now": NOW}
    return domain.unusable_reason(h, terms, **(args | kw))  # type: ignore[arg-type]


def test_fixed_takes_its_value_but_never_more_than_the_subtotal() -> None:
    assert domain.discount(Terms("FIXED", 3_000), 20_000) == 3_000
    assert domain.discount(Terms("FIXED", 3_000), 2_000) == 2_000


def test_percent_rounds_down() -> None:
    assert domain.discount(Terms("PERCENT", 10), 110_000) == 11_000
    assert domain.discount(Terms("PERCENT", 15), 999) == 149
    assert domain.discount(Terms("PERCENT", 100), 5_000) == 5_000


def test_expiry_is_valid_days_after_issue_and_inclusive() -> None:
    expires = domain.expires_at(NOW, 30)
    assert expires == NOW + timedelta(days=30)
    assert not domain.is_expired(expires, expires)
    assert domain.is_expired(expires, expires + timedelta(microseconds=1))


def test_an_issued_coupon_past_expiry_reads_expired() -> None:
    past = NOW - timedelta(seconds=1)
    assert domain.visible_status("ISSUED", past, NOW) == "EXPIRED"
    assert domain.visible_status("ISSUED", NOW, NOW) == "ISSUED"
    assert domain.visible_status("USED", past, NOW) == "USED"
    assert domain.visible_status("PENDING", None, NOW) == "PENDING"


def test_an_issued_coupon_of_the_user_is_usable() -> None:
    assert usable(holding()) is None


def test_someone_elses_or_a_missing_coupon_is_not_usable() -> None:
    assert usable(holding(user_id="u2")) is not None
    assert usable(None) is not None


def test_only_issued_coupons_are_usable() -> None:
    for status in ("PENDING", "REVOKED", "REJECTED"):
        assert usable(holding(status=status)) is not None
    assert usable(holding(status="USED", order_id="other")) is not None


def test_an_expired_coupon_is_not_usable() -> None:
    assert usable(holding(expires_at=NOW - timedelta(seconds=1))) == "the coupon has expired"


def test_the_minimum_order_amount_is_inclusive() -> None:
    terms = Terms("FIXED", 1_000, min_order_amount=10_000)
    assert usable(holding(), terms, subtotal=10_000) is None
    assert usable(holding(), terms, subtotal=9_999) is not None


def test_the_order_that_holds_the_coupon_may_reserve_it_again() -> None:
    held_here = holding(status="USED", order_id="o1", expires_at=NOW - timedelta(days=1))
    assert usable(held_here) is None
    terms = Terms("FIXED", 1_000, min_order_amount=50_000)
    assert usable(held_here, terms, subtotal=49_999) is not None


def test_only_the_order_using_the_coupon_may_reprice_it_even_past_expiry() -> None:
    terms = Terms("PERCENT", 10, min_order_amount=10_000)
    used_here = holding(status="USED", order_id="o1", expires_at=NOW - timedelta(days=1))

    def refusal(h: Holding | None, subtotal: int = 30_000) -> str | None:
        return domain.repricing_refusal(h, terms, order_id="o1", subtotal=subtotal)

    assert refusal(used_here) is None
    assert refusal(used_here, subtotal=10_000) is None
    assert "minimum of 10000" in (refusal(used_here, subtotal=9_999) or "")
    for other in (None, holding(), holding(status="USED", order_id="o2")):
        assert refusal(other) == "the coupon is not used by this order"


def test_terms_are_checked() -> None:
    ok = {"discount_type": "PERCENT", "discount_value": 10, "total_quantity": 1, "valid_days": 30}
    assert domain.terms_error(**ok) is None  # type: ignore[arg-type]
    for bad in (
        {"discount_value": 0},
        {"discount_value": 101},
        {"discount_type": "FIXED", "discount_value": 0},
        {"discount_type": "GIFT"},
        {"total_quantity": 0},
        {"valid_days": 0},
        {"valid_days": 366},
    ):
        assert domain.terms_error(**(ok | bad)) is not None  # type: ignore[arg-type]


def test_only_unused_issued_coupons_can_be_revoked() -> None:
    assert domain.can_revoke("ISSUED") and domain.can_revoke("REVOKED")
    assert not any(domain.can_revoke(s) for s in ("PENDING", "USED", "REJECTED"))
