"""An operator's work in the console, in a real browser: log in, follow an order's saga, read the
sales charts, and redrive a dead letter made for real (a poison event on a real topic)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect

from contracts.order import OrderPaid, SoldLine
from shopdev.testing import KafkaProbe, poll
from shopkit.db import asyncpg_dsn

from .conftest import Stack, log_in, shoot

pytestmark = pytest.mark.ui


@dataclass(frozen=True)
class Shop:
    order: dict[str, Any]
    product_name: str
    coupon_id: str
    shopper_email: str


@pytest.fixture(scope="module")
async def shop(stack: Stack) -> Shop:
    """One paid order with a coupon, so every page has something real to show."""
    user = await stack.new_user(balance=100_000)
    name = f"Console lamp {uuid.uuid4().hex[:6]}"
    product_id = await stack.new_product(price=12_000, stock=10, name=name)
    coupon = await stack.client.post(
        "/api/coupons",
        json={
            "name": "Console 1,000 off",
            "discount_type": "FIXED",
            "discount_value": 1_000,
            "total_quantity": 50,
        },
        headers=stack.admin,
    )
    assert coupon.status_code == 201, coupon.text
    issued = await stack.client.post(
        f"/api/coupons/{coupon.json()['id']}/issue?wait=true",
        json={"user_id": user.id},
        headers=user.headers,
    )
    assert issued.status_code == 201, issued.text
    placed = await stack.client.post(
        "/api/orders?wait=true",
        json={
            "user_id": user.id,
            "items": [{"product_id": product_id, "quantity": 2}],
            "coupon_id": issued.json()["id"],
        },
        headers=user.headers,
    )
    assert placed.status_code == 200 and placed.json()["status"] == "PAID", placed.text
    return Shop(placed.json(), name, coupon.json()["id"], user.email)


async def test_only_an_admin_gets_past_the_login(page: Page, stack: Stack, shop: Shop) -> None:
    answer = await page.goto("/console/")
    assert answer and answer.ok
    # Scripts only from the gateway itself: no CDN, no inline script.
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    await shoot(page, "login")
    await log_in(page, password="e2e-password", email=shop.shopper_email)
    await expect(page.get_by_role("status")).to_have_text("This account is not an admin.")
    await expect(page.get_by_role("navigation", name="Pages")).to_be_hidden()

    await log_in(page)
    await expect(page.get_by_role("navigation", name="Pages")).to_be_visible()
    assert await page.evaluate("Object.keys(sessionStorage)") == ["shop-console-token"]
    assert await page.evaluate("Object.keys(localStorage)") == []


async def test_an_orders_saga_reads_as_a_timeline(page: Page, shop: Shop) -> None:
    await log_in(page)
    await page.get_by_label("Order id").fill(shop.order["id"])
    await page.get_by_role("button", name="Show timeline").click()

    await expect(page.locator("#order-status")).to_have_text("PAID")
    steps = page.get_by_role("list", name="Saga timeline, oldest first").get_by_role("listitem")
    await expect(steps.first).to_contain_text("OrderPlaced")
    await expect(steps.last).to_contain_text("OrderPaid")
    events = [text.split("\n") for text in await steps.all_inner_texts()]
    assert any("CouponReserved" in " ".join(e) for e in events), events
    assert any("WalletDebited" in " ".join(e) for e in events), events
    payments = page.get_by_role("table", name="Payments at the provider")
    await expect(payments).to_contain_text("APPROVED")
    await expect(payments).to_contain_text("23,000 KRW")
    await expect(page.locator("#order")).to_contain_text("Console 1,000 off: USED")
    await shoot(page, "order-timeline")


async def test_the_sales_charts_render_the_paid_order(page: Page, shop: Shop) -> None:
    await log_in(page)
    await page.get_by_role("link", name="Sales").click()

    # The chart library drew the product (analytics may take a moment to project the sale).
    drawn = (
        "(Chart.getChart('popular-chart')?.data.labels ?? []).includes(name)"
        " && (Chart.getChart('sales-chart')?.data.datasets[1].data ?? []).some(n => n > 0)"
    )
    for _ in range(20):
        if await page.evaluate(f"name => {drawn}", shop.product_name):
            break
        await page.wait_for_timeout(500)
        for button in await page.get_by_role("button", name="Show").all():
            await button.click()
    assert await page.evaluate(f"name => {drawn}", shop.product_name)
    for canvas in ("popular-chart", "sales-chart"):
        painted = await page.evaluate(
            """id => {
                const c = document.getElementById(id);
                const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < px.length; i += 4) if (px[i]) n++;
                return n;
            }""",
            canvas,
        )
        assert painted > 1000, (canvas, painted)
    await shoot(page, "sales")


async def test_a_dead_letter_is_shown_and_redriven_once(page: Page, stack: Stack) -> None:
    product_id = f"poison-{uuid.uuid4().hex[:8]}"
    line = SoldLine(product_id=product_id, name="Poison", category="ELECTRONICS", quantity=3,
                    unit_price=100)  # fmt: skip
    event = OrderPaid(
        order_id=f"order-{product_id}",
        user_id="console-test",
        lines=(line,),
        subtotal=300,
        discount=0,
        total=300,
        paid_at=datetime(2001, 1, 1, 3, tzinfo=UTC),  # far from the charts' windows
    )
    analytics = await asyncpg.connect(asyncpg_dsn(stack.db_url("analytics")))
    try:
        # A fault only this product meets, until the operator repairs it.
        await analytics.execute(
            f"ALTER TABLE product_daily_sales ADD CONSTRAINT console_poison"
            f" CHECK (product_id <> '{product_id}')"
        )
        await KafkaProbe(stack.infra.kafka_bootstrap, stack.namespace).publish(event)

        async def dead() -> list[dict[str, Any]]:
            listed = await stack.client.get(
                "/api/ops/analytics/dead-letters?limit=100", headers=stack.admin
            )
            return [d for d in listed.json()["items"] if d["key"] == event.order_id]

        await poll(dead, timeout=60, message="the poison event dead-lettered")

        await log_in(page)
        await page.get_by_role("link", name="Dead letters").click()
        await page.get_by_label("Service").select_option("analytics")
        await page.get_by_role("button", name="List").click()
        row = page.get_by_role("row").filter(has_text=event.order_id)
        await expect(row).to_contain_text("OrderPaid")
        await expect(row).to_contain_text("console_poison")  # the error names the constraint
        await row.get_by_role("button", name="Show").click()
        await expect(page.locator("#dead-letter pre").last).to_contain_text(event.order_id)
        await shoot(page, "dead-letters")

        await analytics.execute("ALTER TABLE product_daily_sales DROP CONSTRAINT console_poison")
        await row.get_by_role("button", name="Redrive").click()
        await expect(page.get_by_role("status")).to_contain_text("REDRIVING")

        async def sold() -> Any:
            return await analytics.fetchval(
                "SELECT sum(quantity) FROM product_daily_sales WHERE product_id = $1", product_id
            )

        assert await poll(sold, timeout=30, message="the redriven event applied") == 3
        await page.get_by_label("Status").select_option("REDRIVEN")

        async def listed_as_redriven() -> int:
            await page.get_by_role("button", name="List").click()
            return await page.get_by_role("row").filter(has_text=event.order_id).count()

        await poll(listed_as_redriven, timeout=30, message="the letter listed as REDRIVEN")
        assert await dead() == [] or all(d["status"] != "DEAD" for d in await dead())
        assert await sold() == 3
    finally:
        await analytics.execute(
            "ALTER TABLE product_daily_sales DROP CONSTRAINT IF EXISTS console_poison"
        )
        await analytics.close()


async def test_the_outbox_and_coupon_pages(page: Page, stack: Stack, shop: Shop) -> None:
    await log_in(page)
    await page.get_by_role("link", name="Outbox").click()
    backlog = page.get_by_role("table", name="Outbox backlog per service")
    await expect(backlog.get_by_role("row")).to_have_count(7)  # a header and six services
    for row in (await backlog.get_by_role("row").all())[1:]:
        cells = await row.get_by_role("cell").all_inner_texts()
        assert cells[1].isdigit(), cells
    await shoot(page, "outbox")

    await page.get_by_role("link", name="Coupons").click()
    await page.get_by_label("Coupon id").fill(shop.coupon_id)
    await page.get_by_role("button", name="Show").click()
    progress = page.get_by_label("Issued 1 of 50 (49 left)")
    await expect(progress).to_have_attribute("value", "1")
    await shoot(page, "coupon")


async def test_a_parked_saga_is_listed_and_retried_after_the_repair(
    page: Page, stack: Stack
) -> None:
    user = await stack.new_user(balance=10_000)
    product_id = await stack.new_product(price=1_000, stock=5)
    placed = await stack.client.post(
        "/api/orders?wait=true",
        json={"user_id": user.id, "items": [{"product_id": product_id, "quantity": 1}]},
        headers=user.headers,
    )
    assert placed.status_code == 200 and placed.json()["status"] == "PAID", placed.text
    order_id = placed.json()["id"]
    orders = await asyncpg.connect(asyncpg_dsn(stack.db_url("order")))
    try:
        good = await orders.fetchrow("SELECT step, saga::text FROM orders WHERE id = $1", order_id)
        # A saga row its deadline scan cannot load: the scan parks it (and holds no one back).
        await orders.execute(
            "UPDATE orders SET step = 'DEBITING', saga = '[]', deadline = now() WHERE id = $1",
            order_id,
        )

        async def parked() -> list[str]:
            listed = await stack.client.get(
                "/api/ops/order/parked-orders?limit=100", headers=stack.admin
            )
            return [o["id"] for o in listed.json()["items"]]

        await poll(parked, until=lambda ids: order_id in ids, message="the order parked")

        await log_in(page)
        await page.get_by_role("link", name="Parked sagas").click()
        row = page.get_by_role("row").filter(has_text=order_id)
        await expect(row).to_contain_text("DEBITING")
        await expect(row).to_contain_text("ValidationError")
        await shoot(page, "parked-sagas")

        # The operator repairs the row, then resumes the saga from the page.
        await orders.execute(
            "UPDATE orders SET step = $2, saga = $3::jsonb WHERE id = $1",
            order_id,
            good["step"],
            good["saga"],
        )
        await row.get_by_role("button", name="Retry").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Order {order_id}: saga resumed")
        await expect(row).to_have_count(0)
    finally:
        await orders.close()
    assert order_id not in await parked()
    history = await stack.client.get(f"/api/orders/{order_id}/history", headers=stack.admin)
    events = [entry["event"] for entry in history.json()]
    assert events.index("RetryRequested") > events.index("SagaParked") > events.index("OrderPaid")
    shown = await stack.client.get(f"/api/orders/{order_id}", headers=stack.admin)
    assert shown.json()["status"] == "PAID"
