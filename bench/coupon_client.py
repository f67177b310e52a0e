"""What the coupon benchmarks share: a lean keep-alive HTTP/1.1 client, tokens as the wallet
signs them, the coupon under test, a percentile, and running on uvloop."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from shopkit import local_secrets
from shopkit.auth import TokenSigner
from shopkit.keys import load_private_key


async def create_coupon(
    client: httpx.AsyncClient, admin: dict[str, str], name: str, quantity: int
) -> str:
    """A FIXED coupon of `quantity` units, made by the admin; its id."""
    created = await client.post(
        "/api/coupons",
        json={
            "name": name,
            "discount_type": "FIXED",
            "discount_value": 1_000,
            "total_quantity": quantity,
        },
        headers=admin,
    )
    created.raise_for_status()
    return str(created.json()["id"])


def signer_of(private_key: str) -> TokenSigner:
    """Tokens as the wallet would sign them (the bench plays the wallet's login)."""
    key = load_private_key(private_key, variable=local_secrets.PRIVATE_KEY)
    return TokenSigner(key, issuer="shop", audience="shop-api", ttl_seconds=3600)


class Connection:
    """One keep-alive HTTP/1.1 connection: send a request, read the whole response."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes, token: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                close = True
        if chunked:
            data = b""
            while size := int((await self.reader.readline()).strip(), 16):
                data += await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `main` on uvloop when it is installed: the client then costs less CPU."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
