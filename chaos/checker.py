"""The conservation rules, pure: the books the auditor read in (`chaos.books`), the violations out.

Every rule is a function over plain rows, so the unit tests can feed it made-up books.
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chaos.books import Books, OrderRow

TERMINAL = ("PAID", "FAILED", "CANCELLED")
# How long after the last fault every order must have reached its end, and how long after a
# fault the shopper's reads must answer 2xx again (issue 15, "Done when").
SETTLE_LIMIT_S = 60.0
RECOVERY_LIMIT_S = 5.0
# A rule reports at most this many examples; the count says how many there were.
EXAMPLES = 5


@dataclass(frozen=True)
class Violation:
    rule: str
    count: int
    examples: tuple[str, ...]

    def __str__(self) -> str:
        more = (
            f" (+{self.count - len(self.examples)} more)" if self.count > len(self.examples) else ""
        )
        return f"{self.rule}: {self.count} - {'; '.join(self.examples)}{more}"


Rule = Callable[[Books], Iterable[str]]


def paid_units(orders: Iterable[OrderRow]) -> dict[str, tuple[int, int]]:
    """Units and amount (quantity x unit price) per product over PAID orders."""
    units: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for order in orders:
        if order.status == "PAID":
            for line in order.lines:
                units[line.product_id][0] += line.quantity
                units[line.product_id][1] += line.quantity * line.unit_price
    return {p: (q, a) for p, (q, a) in units.items()}


def orders_settled(b: Books) -> Iterable[str]:
    """Every order ends PAID, FAILED or CANCELLED with nothing in flight, within the limit."""
    for o in b.orders:
        if o.status not in TERMINAL or o.step != "DONE":
            yield f"order {o.id} is {o.status}/{o.step}"
    if b.settled_after_s is None or b.settled_after_s > SETTLE_LIMIT_S:
        took = "never" if b.settled_after_s is None else f"{b.settled_after_s:.1f} s"
        yield f"orders settled {took} after the last fault (limit {SETTLE_LIMIT_S:.0f} s)"


def accepted_orders_kept(b: Books) -> Iterable[str]:
    """An order the gateway accepted (202) exists in the order database."""
    known = {o.id for o in b.orders}
    for order_id in sorted(b.accepted_orders - known):
        yield f"order {order_id} was accepted but is not in the order database"


def wallets_balance(b: Books) -> Iterable[str]:
    """Balance = ledger sum = charges - payments + refunds = what was charged - PAID totals."""
    spent: Counter[str] = Counter()
    for o in b.orders:
        if o.status == "PAID":
            spent[o.user_id] += o.total
    for user_id, w in sorted(b.wallets.items()):
        ledger = w.charges + w.payments + w.refunds + w.other
        if w.balance != ledger:
            yield f"user {user_id}: balance {w.balance} != ledger sum {ledger}"
        if w.payments > 0 or w.other:
            yield f"user {user_id}: payments {w.payments} (must be <= 0), other {w.other}"
        if w.balance < 0:
            yield f"user {user_id}: negative balance {w.balance}"
    for user_id, charged in sorted(b.charged.items()):
        found = b.wallets.get(user_id)
        if found is None:
            yield f"user {user_id}: no wallet"
            continue
        if found.charges != charged:
            yield f"user {user_id}: ledger charges {found.charges} != charged {charged}"
        if found.balance != charged - spent[user_id]:
            yield (
                f"user {user_id}: balance {found.balance} != charged {charged}"
                f" - PAID totals {spent[user_id]}"
            )


def stock_conserved(b: Books) -> Iterable[str]:
    """start - available - reserved = units in PAID orders, and nothing stays reserved."""
    sold = paid_units(b.orders)
    for product_id, start in sorted(b.start_stock.items()):
        s = b.stock.get(product_id)
        if s is None:
            yield f"product {product_id}: no stock row"
            continue
        units = sold.get(product_id, (0, 0))[0]
        if start - s.available - s.reserved != units:
            yield (
                f"product {product_id}: start {start} - available {s.available}"
                f" - reserved {s.reserved} != {units} units in PAID orders"
            )
        if s.reserved:
            yield f"product {product_id}: {s.reserved} units still reserved when quiet"
        if s.sold != units:
            yield f"product {product_id}: sold {s.sold} != {units} units in PAID orders"


def coupons_conserved(b: Books) -> Iterable[str]:
    """Never more issued than the total; USED coupons belong to PAID orders and vice versa."""
    for coupon_id, c in sorted(b.coupons.items()):
        if c.issued_quantity > c.total_quantity:
            yield f"coupon {coupon_id}: issued {c.issued_quantity} > total {c.total_quantity}"
    given = Counter(
        uc.coupon_id for uc in b.user_coupons if uc.status not in ("PENDING", "REJECTED")
    )
    for coupon_id, n in sorted(given.items()):
        coupon = b.coupons.get(coupon_id)
        if coupon is not None and n > coupon.total_quantity:
            yield f"coupon {coupon_id}: {n} user coupons given > total {coupon.total_quantity}"
    orders = {o.id: o for o in b.orders}
    by_id = {uc.id: uc for uc in b.user_coupons}
    for uc in b.user_coupons:
        if uc.status != "USED":
            continue
        order = orders.get(uc.order_id or "")
        if order is None or order.status != "PAID" or order.coupon_id != uc.id:
            state = "missing" if order is None else order.status
            yield f"user coupon {uc.id} is USED by order {uc.order_id} ({state})"
    for o in b.orders:
        if o.status == "PAID" and o.coupon_id:
            held = by_id.get(o.coupon_id)
            if held is None or held.status != "USED" or held.order_id != o.id:
                state = "missing" if held is None else f"{held.status} for {held.order_id}"
                yield f"PAID order {o.id}: its coupon {o.coupon_id} is {state}"


def payments_match(b: Books) -> Iterable[str]:
    """One live APPROVED payment per PAID order (none when a coupon made it free); none for
    FAILED, CANCELLED or unknown ones."""
    approved: Counter[str] = Counter(p.order_id for p in b.payments if p.status == "APPROVED")
    orders = {o.id: o for o in b.orders}
    for o in b.orders:
        n = approved[o.id]
        due = 1 if o.total > 0 else 0  # a 0-total order is paid without the provider
        if o.status == "PAID" and n != due:
            yield f"PAID order {o.id} (total {o.total}) has {n} APPROVED payments"
        if o.status in ("FAILED", "CANCELLED") and n:
            yield f"{o.status} order {o.id} has {n} APPROVED payment(s) left"
    for order_id in sorted(set(approved) - set(orders)):
        yield f"APPROVED payment for unknown order {order_id}"


def analytics_match(b: Books) -> Iterable[str]:
    """Analytics counts exactly the PAID sales: per product, and the same set of orders."""
    sold = paid_units(b.orders)
    for product_id in sorted(set(sold) | set(b.analytics)):
        want = sold.get(product_id, (0, 0))
        got = b.analytics.get(product_id, (0, 0))
        if want != got:
            yield (
                f"product {product_id}: analytics {got[0]} units / {got[1]} KRW,"
                f" PAID orders {want[0]} / {want[1]}"
            )
    paid = {o.id for o in b.orders if o.status == "PAID"}
    counted = {oid for oid, status in b.analytics_orders.items() if status == "PAID"}
    for order_id in sorted(paid - counted):
        yield f"PAID order {order_id} not counted by analytics"
    for order_id in sorted(counted - paid):
        yield f"analytics counts order {order_id}, which is not PAID"


def no_dead_letters(b: Books) -> Iterable[str]:
    """Nothing dead-lettered: no DEAD row in any service, no message on any .dlt topic."""
    for service, n in sorted(b.dead_letters.items()):
        if n:
            yield f"{service}: {n} dead letter(s)"
    for topic, n in sorted(b.dlt_messages.items()):
        if n:
            yield f"{topic}: {n} message(s)"


def reads_recovered(b: Books) -> Iterable[str]:
    """After each fault ended, the shopper's reads answered 2xx again within the limit."""
    for f in b.faults:
        if f.recovery_s is None:
            yield f"{f.name}: reads never answered 2xx again"
        elif f.recovery_s > RECOVERY_LIMIT_S:
            yield f"{f.name}: reads back after {f.recovery_s:.1f} s (limit {RECOVERY_LIMIT_S:.0f} s)"


def replicas_covered(b: Books) -> Iterable[str]:
    """A replica killed while another of its service served cost the shopper's reads no error:
    the gateway sent them to the live one. A read that only took longer than the probe's 2 s
    (the killed replicas restarting take both cores of this machine) is reported, not ruled."""
    for f in b.faults:
        if not f.spared:
            continue
        for read, rounds in sorted(f.failed_reads.items()):
            if not read.endswith("Timeout"):
                yield f"{f.name}: read {read} x {rounds} while another replica served"


def no_server_errors(b: Books) -> Iterable[str]:
    """The load saw no 5xx but 503 (an outage, answered as one): a 500 is a bug."""
    for status, n in sorted(b.http_status.items()):
        if status >= 500 and status != 503 and n:
            yield f"HTTP {status} x {n}"


RULES: dict[str, Rule] = {
    "orders settled": orders_settled,
    "accepted orders kept": accepted_orders_kept,
    "wallets balance": wallets_balance,
    "stock conserved": stock_conserved,
    "coupons conserved": coupons_conserved,
    "payments match orders": payments_match,
    "analytics = PAID sales": analytics_match,
    "no dead letters": no_dead_letters,
    "reads recovered": reads_recovered,
    "replicas covered": replicas_covered,
    "no HTTP 500": no_server_errors,
}


def check(books: Books) -> list[Violation]:
    """Every rule's findings; an empty list means the books balance."""
    violations = []
    for name, rule in RULES.items():
        found = list(rule(books))
        if found:
            violations.append(Violation(name, len(found), tuple(found[:EXAMPLES])))
    return violations
