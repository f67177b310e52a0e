"""The payment provider's HTTP API, as the shop calls it (the worker is in payments.py)."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from order.settings import Settings
from shopkit import tracing
from shopkit.keys import check_secret
from shopkit.logs import correlation_id


class ProviderUnavailable(Exception):
    """The provider did not answer at all (down, refused, 5xx): safe to try again."""


@dataclass(frozen=True)
class PaymentResult:
    status: str  # APPROVED | DECLINED | TIMEOUT
    payment_id: str = ""
    detail: str = ""


def merchant_headers(settings: Settings) -> dict[str, str]:
    """How the shop authenticates to the provider: its merchant key, never a shop token."""
    key = settings.merchant_key.get_secret_value() if settings.merchant_key else None
    return {"X-Merchant-Key": check_secret(key, variable="SHOP_MERCHANT_KEY")}


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


class PaymentProvider:
    """The provider's HTTP API, on aiohttp: a call costs a fraction of httpx's CPU."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = aiohttp.ClientSession(
            settings.payment_url,
            timeout=aiohttp.ClientTimeout(total=settings.payment_timeout_seconds),
            connector=aiohttp.TCPConnector(limit=settings.payment_concurrency * 2),
            json_serialize=_json_text,  # orjson both ways: json was a large share of a call's CPU
        )
        self._auth = merchant_headers(settings)

    def _headers(self) -> dict[str, str]:
        """The merchant key, and the order's correlation id and trace context when known."""
        headers = self._auth
        cid = correlation_id.get()
        if cid:
            headers = {**headers, "X-Correlation-Id": cid}
        traceparent = tracing.current_traceparent() if tracing.ON else None
        if traceparent:
            headers = {**headers, "traceparent": traceparent}
        return headers

    async def pay(self, *, order_id: str, amount: int) -> PaymentResult:
        """Ask for the payment once, with the order id as idempotency key."""
        try:
            async with self.client.post(
                "/api/payments",
                json={"order_id": order_id, "amount": amount},
                headers={**self._headers(), "Idempotency-Key": order_id},
            ) as response:
                if response.status >= 500 or response.status in (409, 429):
                    raise ProviderUnavailable(f"HTTP {response.status}")
                body: dict[str, Any] = await response.json(loads=orjson.loads)
        except aiohttp.ConnectionTimeoutError as exc:  # never reached it: nothing was asked
            raise ProviderUnavailable(repr(exc)) from exc
        except TimeoutError:  # asked, no answer in time: it may have charged
            return PaymentResult(
                "TIMEOUT", detail=f"no answer in {self.settings.payment_timeout_seconds}s"
            )
        except aiohttp.ClientError as exc:
            raise ProviderUnavailable(repr(exc)) from exc
        if response.status in (200, 201) and body.get("status") == "APPROVED":
            return PaymentResult("APPROVED", payment_id=str(body["payment_id"]))
        return PaymentResult(
            "DECLINED", payment_id=str(body.get("payment_id", "")), detail=str(body)
        )

    async def cancel_all(self, *, order_id: str) -> tuple[str, ...]:
        """Cancel every approved payment the provider holds for the order; their ids (those
        already cancelled included: a resent cancel finds them so)."""
        cancelled: list[str] = []
        try:
            async for payment in self._payments_of(order_id):
                if payment["status"] == "APPROVED":
                    await self._cancel(payment["payment_id"], accepted=(200, 409))
                if payment["status"] in ("APPROVED", "CANCELLED"):
                    cancelled.append(str(payment["payment_id"]))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(repr(exc)) from exc
        return tuple(cancelled)

    async def cancel_approved(self, *, order_id: str) -> tuple[str, ...]:
        """Cancel the approved payments the provider holds for the order (a late approval);
        the ids of those this call cancelled."""
        cancelled: list[str] = []
        try:
            async for payment in self._payments_of(order_id):
                if payment["status"] == "APPROVED":
                    await self._cancel(payment["payment_id"], accepted=(200,))
                    cancelled.append(str(payment["payment_id"]))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderUnavailable(repr(exc)) from exc
        return tuple(cancelled)

    async def _payments_of(self, order_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every payment the provider holds for the order, page by page."""
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"order_id": order_id, "limit": 100}
            if cursor:
                params["cursor"] = cursor
            async with self.client.get(
                "/api/payments", params=params, headers=self._headers()
            ) as page:
                if page.status != 200:
                    raise ProviderUnavailable(f"lookup HTTP {page.status}")
                found: dict[str, Any] = await page.json(loads=orjson.loads)
            for payment in found["items"]:
                yield payment
            cursor = found.get("next_cursor")
            if not cursor:
                return

    async def _cancel(self, payment_id: str, *, accepted: tuple[int, ...]) -> None:
        async with self.client.post(
            f"/api/payments/{payment_id}/cancel", headers=self._headers()
        ) as done:
            if done.status not in accepted:
                raise ProviderUnavailable(f"cancel HTTP {done.status}")

    async def close(self) -> None:
        await self.client.close()
