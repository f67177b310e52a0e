"""The auditor's rules on made-up books: balanced books pass, each kind of leak is caught."""

from dataclasses import replace

from chaos.books import (
    Books,
    CouponRow,
    FaultOutcome,
    LedgerSums,
    OrderLine,
    OrderRow,
    PaymentRow,
    StockRow,
    UserCouponRow,
)
from chaos.checker import check
from chaos.probe import Sample, recovery

P1, P2 = "p1", "p2"


def order(oid: str, status: str, *, lines=((P1, 2, 1_000),), coupon=None, step="DONE", total=None):
    lines = tuple(OrderLine(*x) for x in lines)
    amount = sum(x.quantity * x.unit_price for x in lines)
    return OrderRow(oid, "u1", status, step, amount if total is None else total, coupon, lines)


def balanced() -> Books:
    """u1 charged 100,000: o1 PAID 2 x 1,000 with a 500 coupon, o2 FAILED, o3 CANCELLED."""
    orders = [
        order("o1", "PAID", coupon="uc1", total=1_500),
        order("o2", "FAILED"),
        order("o3", "CANCELLED", lines=((P2, 1, 5_000),)),
    ]
    return Books(
        orders=orders,
        wallets={
            "u1": LedgerSums(
                balance=98_500, charges=100_000, payments=-1_500 - 5_000, refunds=5_000
            ),
            "admin": LedgerSums(balance=0),
        },
        charged={"u1": 100_000},
        start_stock={P1: 10, P2: 5},
        stock={P1: StockRow(8, 0, 2), P2: StockRow(5, 0, 0)},
        coupons={"c1": CouponRow(total_quantity=2, issued_quantity=2)},
        user_coupons=[
            UserCouponRow("uc1", "c1", "USED", "o1"),
            UserCouponRow("uc2", "c1", "ISSUED", None),
            UserCouponRow("uc3", "c1", "REJECTED", None),
        ],
        payments=[
            PaymentRow("o1", "APPROVED", 1_500),
            PaymentRow("o3", "CANCELLED", 5_000),
            PaymentRow("o2", "CANCELLED", 2_000),  # approved late, voided
        ],
        analytics={P1: (2, 2_000)},
        analytics_orders={"o1": "PAID", "o3": "CANCELLED"},
        dead_letters={"order": 0, "wallet": 0},
        dlt_messages={"c1.order.events.dlt": 0},
        accepted_orders={"o1", "o2", "o3"},
        settled_after_s=4.0,
        faults=[FaultOutcome("kill -9 order", 1.5), FaultOutcome("postgres restart", 0.0)],
        http_status={202: 10, 409: 2, 503: 7},
    )


def rules(books: Books) -> set[str]:
    return {v.rule for v in check(books)}


def test_balanced_books_pass() -> None:
    assert check(balanced()) == []


def test_an_order_in_flight_or_settling_late_is_caught() -> None:
    b = balanced()
    b.orders[0] = replace(b.orders[0], step="CANCEL_REFUNDING")
    assert "orders settled" in rules(b)
    assert "orders settled" in rules(replace(balanced(), settled_after_s=75.0))
    assert "orders settled" in rules(replace(balanced(), settled_after_s=None))


def test_an_accepted_order_missing_from_the_database_is_caught() -> None:
    assert rules(replace(balanced(), accepted_orders={"o1", "o2", "o3", "o4"})) == {
        "accepted orders kept"
    }


def test_balance_off_its_ledger_or_off_the_paid_totals_is_caught() -> None:
    b = balanced()
    b.wallets["u1"] = replace(b.wallets["u1"], balance=98_000)
    assert rules(b) == {"wallets balance"}
    # A refund recorded twice: ledger and balance agree, but not with what the orders hold.
    b = balanced()
    b.wallets["u1"] = replace(b.wallets["u1"], balance=103_500, refunds=10_000)
    found = [v for v in check(b) if v.rule == "wallets balance"]
    assert found and "PAID totals" in found[0].examples[0]


def test_stock_sold_but_not_paid_or_left_reserved_is_caught() -> None:
    b = balanced()
    b.stock[P1] = StockRow(7, 0, 3)
    assert rules(b) == {"stock conserved"}
    b = balanced()
    b.stock[P2] = StockRow(4, 1, 0)
    found = [v for v in check(b) if v.rule == "stock conserved"]
    assert found and "still reserved" in " ".join(found[0].examples)


def test_coupons_over_issued_or_used_by_an_order_that_is_not_paid_are_caught() -> None:
    b = replace(balanced(), coupons={"c1": CouponRow(total_quantity=1, issued_quantity=2)})
    assert "coupons conserved" in rules(b)
    b = balanced()
    b.user_coupons[1] = UserCouponRow("uc2", "c1", "USED", "o2")
    assert rules(b) == {"coupons conserved"}
    b = balanced()
    b.user_coupons[0] = UserCouponRow("uc1", "c1", "ISSUED", None)
    assert rules(b) == {"coupons conserved"}


def test_payments_missing_doubled_or_left_approved_are_caught() -> None:
    b = balanced()
    b.payments.append(PaymentRow("o1", "APPROVED", 1_500))
    assert rules(b) == {"payments match orders"}
    b = balanced()
    b.payments[2] = PaymentRow("o2", "APPROVED", 2_000)
    assert rules(b) == {"payments match orders"}
    b = balanced()
    b.payments[0] = PaymentRow("o1", "CANCELLED", 1_500)
    assert rules(b) == {"payments match orders"}
    b = balanced()
    b.payments.append(PaymentRow("nobody", "APPROVED", 9))
    assert rules(b) == {"payments match orders"}


def test_a_free_paid_order_needs_no_payment_and_must_have_none() -> None:
    b = balanced()
    b.orders.append(order("o9", "PAID", total=0))
    assert "payments match orders" not in rules(b)
    b.payments.append(PaymentRow("o9", "APPROVED", 0))
    assert "payments match orders" in rules(b)


def test_analytics_off_the_paid_sales_is_caught() -> None:
    assert rules(replace(balanced(), analytics={P1: (1, 1_000)})) == {"analytics = PAID sales"}
    counted_cancel = {"o1": "PAID", "o3": "PAID"}
    assert rules(replace(balanced(), analytics_orders=counted_cancel)) == {"analytics = PAID sales"}


def test_any_dead_letter_is_caught() -> None:
    assert rules(replace(balanced(), dead_letters={"catalog": 3})) == {"no dead letters"}
    assert rules(replace(balanced(), dlt_messages={"c1.order.events.dlt": 1})) == {
        "no dead letters"
    }


def test_slow_or_missing_recovery_and_500s_are_caught() -> None:
    slow = [FaultOutcome("kafka restart", 5.5)]
    assert rules(replace(balanced(), faults=slow)) == {"reads recovered"}
    assert rules(replace(balanced(), faults=[FaultOutcome("x", None)])) == {"reads recovered"}
    assert rules(replace(balanced(), http_status={202: 5, 500: 1})) == {"no HTTP 500"}
    assert rules(replace(balanced(), http_status={503: 50})) == set()


def test_recovery_is_measured_to_the_last_failing_read() -> None:
    samples = [
        Sample(10.0, 10.1, ("order 503",)),
        Sample(11.0, 11.1, ()),
        Sample(12.0, 12.1, ("balance 500",)),
        Sample(13.0, 13.1, ()),
        Sample(14.0, 14.1, ()),
        Sample(15.0, 16.5, ("product 503",)),  # answered after the next fault began
    ]
    assert recovery(samples, ended=10.0, until=16.0) == 3.0
    assert recovery(samples, ended=13.0, until=16.0) == 0.0
    assert recovery(samples, ended=10.0, until=12.5) is None  # still failing when watched last
    assert recovery(samples, ended=20.0, until=25.0) is None  # never watched


def test_the_table_shows_each_run_and_its_violations() -> None:
    from chaos.report import table
    from chaos.runner import RunResult

    result = RunResult(
        seed=7,
        ok=False,
        duration_s=120.0,
        orders={"PAID": 3, "FAILED": 1},
        failure_codes={"OUT_OF_STOCK": 1},
        faults=[
            {
                "name": "postgres restart",
                "at": "2026-12-02T20:00:00+00:00",
                "down_s": 4.5,
                "boot_s": None,
                "recovery_s": 0.0,
                "outage_s": 4.5,
                "failed_rounds": 3,
                "failed_reads": {"balance 503": 3},
                "http_500": 2,
                "http_503": 1,
                "error": None,
            }
        ],
        violations=["no HTTP 500: 1 - HTTP 500 x 2"],
        http_status={202: 10, 500: 2, 503: 1},
        requests={},
        transport_errors={},
        server_errors=[],
        skipped_ticks=0,
        settled_after_s=6.0,
        drained=True,
        dead_letter_samples=[],
        logged={},
        namespace="c7x.",
        log_dir="/tmp/logs",
    )
    text = table([result], details=True)
    assert "FAIL" in text and "postgres restart" in text and "! no HTTP 500" in text


def test_a_replica_kill_that_fails_a_read_is_caught_but_a_slow_read_is_not() -> None:
    covered = FaultOutcome("kill -9 replica of each (1)", 0.0, spared=True)
    assert rules(replace(balanced(), faults=[covered])) == set()
    failed = replace(covered, failed_reads={"order 503": 2})
    assert rules(replace(balanced(), faults=[failed])) == {"replicas covered"}
    slow = replace(covered, failed_reads={"order ReadTimeout": 1})
    assert rules(replace(balanced(), faults=[slow])) == set()
    # A service with no other replica may fail reads while it is down: that is "reads recovered".
    alone = FaultOutcome("kill -9 order", 0.0, failed_reads={"order 503": 2})
    assert rules(replace(balanced(), faults=[alone])) == set()


def test_the_replica_plan_kills_each_process_once_and_a_replica_of_every_service_each_time() -> (
    None
):
    import random

    from chaos.faults import replica_plan

    replicas = {"order": ["order", "order#2"], "wallet": ["wallet", "wallet#2"]}
    plan = replica_plan(random.Random(3), replicas)
    assert len(plan) == 2
    assert all(f.name.startswith("kill -9 replica of each") for f in plan)
    assert [sorted(n.split("#")[0] for n in f.killed) for f in plan] == [["order", "wallet"]] * 2
    assert sorted(n for f in plan for n in f.killed) == ["order", "order#2", "wallet", "wallet#2"]
