"""Demo data through the gateway's public API: what `make dev` seeds and compose's seed job runs.

    SHOP_GATEWAY_URL=http://gateway:8000 SHOP_ADMIN_PASSWORD=... SHOP_DEMO_PASSWORD=... \
        python -m shopkit.demo

Idempotent the simple way: nothing is made when the catalog already has products, so a restart
of either keeps the data it has.
"""

import os
import sys

import httpx

ADMIN_EMAIL = "admin@shop.local"
DEMO_EMAIL = "demo@shop.local"
DEMO_BALANCE = 500_000
# name, category, price (KRW), stock
PRODUCTS: tuple[tuple[str, str, int, int], ...] = (
    ("Galaxy Book 5", "ELECTRONICS", 1_590_000, 20),
    ("Noise-cancelling earbuds", "ELECTRONICS", 189_000, 50),
    ("Wool coat", "FASHION", 259_000, 15),
    ("Jeju tangerines 5kg", "FOOD", 32_900, 100),
    ("Kimchi 3kg", "FOOD", 24_500, 80),
    ("Clean Architecture", "BOOKS", 29_000, 40),
    ("Desk lamp", "HOME", 45_000, 30),
    ("Yoga mat", "SPORTS", 39_000, 25),
    ("Sunscreen SPF50", "BEAUTY", 18_000, 60),
    ("Building blocks set", "TOYS", 79_000, 0),
)
COUPON = {
    "name": "Welcome 3,000 off",
    "discount_type": "FIXED",
    "discount_value": 3_000,
    "total_quantity": 100,
    "min_order_amount": 10_000,
}


def seed(gateway_url: str, *, admin_password: str, demo_password: str) -> None:
    """Products, the demo shopper with a balance, and a coupon; skipped when products exist."""
    with httpx.Client(base_url=gateway_url, timeout=30) as client:
        login = client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": admin_password}
        )
        login.raise_for_status()
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        if client.get("/api/products", params={"limit": 1}).json()["items"]:
            print("[seed] demo data already there", flush=True)
            demo = {"email": DEMO_EMAIL, "password": demo_password}
            if client.post("/api/auth/login", json=demo).status_code == 401:
                print(
                    f"[seed] {DEMO_EMAIL} predates the current credentials: it keeps the password"
                    " it was created with (start from empty data to reset it)",
                    flush=True,
                )
            return
        for name, category, price, stock in PRODUCTS:
            client.post(
                "/api/products",
                headers=admin,
                json={
                    "name": name,
                    "category": category,
                    "price": price,
                    "stock": stock,
                    "description": f"Demo product: {name}",
                },
            ).raise_for_status()
        demo_user = {"name": "Demo Shopper", "email": DEMO_EMAIL, "password": demo_password}
        created = client.post("/api/users", json=demo_user)
        if created.status_code == 201:
            client.post(
                f"/api/users/{created.json()['id']}/balance/charge",
                headers=admin,
                json={"amount": DEMO_BALANCE},
            ).raise_for_status()
        client.post("/api/coupons", headers=admin, json=COUPON)
        print(f"[seed] {len(PRODUCTS)} products, {DEMO_EMAIL} and a coupon", flush=True)


def main() -> int:
    missing = [
        name
        for name in ("SHOP_GATEWAY_URL", "SHOP_ADMIN_PASSWORD", "SHOP_DEMO_PASSWORD")
        if not os.environ.get(name)
    ]
    if missing:
        print(f"[seed] set {', '.join(missing)}", file=sys.stderr)
        return 2
    seed(
        os.environ["SHOP_GATEWAY_URL"],
        admin_password=os.environ["SHOP_ADMIN_PASSWORD"],
        demo_password=os.environ["SHOP_DEMO_PASSWORD"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
