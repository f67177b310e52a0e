import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from analytics.handlers import CONSUMER
from analytics.main import build_app
from analytics.settings import Settings
from contracts import Envelope, Message
from contracts.order import OrderPaid, SoldLine
from shopdev.testing import (
    Infra,
    KafkaProbe,
    create_database,
    poll,
    serve,
    settings_for,
    unique_name,
)
from shopkit.clock import FrozenClock
from shopkit.db import asyncpg_dsn

SERVICE_DIR = Path(__file__).resolve().parents[1]
SEOUL = ZoneInfo("Asia/Seoul")
Line = tuple[str, int, int] | tuple[str, int, int, str]


@pytest.fixture(scope="session")
async def analytics_db(infra: Infra) -> str:
    return await create_database(infra, SERVICE_DIR, unique_name("analytics"))


@pytest.fixture(scope="session")
def clock() -> FrozenClock:
    return FrozenClock(datetime(2030, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="session")
def settings(infra: Infra, kafka_namespace: str, analytics_db: str) -> Settings:
    return settings_for(
        Settings,
        infra,
        kafka_namespace=kafka_namespace,
        database_url=analytics_db,
        batch_linger_ms=50,
    )


@pytest.fixture(scope="session")
async def analytics(settings: Settings, clock: FrozenClock) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(settings, clock=clock)) as client:
        yield client


class Shop:
    """Publishes order events with chosen times and waits until the projection has them."""

    def __init__(self, kafka: KafkaProbe, database_url: str, clock: FrozenClock) -> None:
        self.kafka = kafka
        self.dsn = asyncpg_dsn(database_url)
        self.clock = clock
        self.published: list[Envelope] = []

    def today(self, day: date) -> None:
        """Freeze the shop's clock at noon (Seoul) of `day`; tests use distinct years."""
        self.clock.now = datetime.combine(day, time(12), SEOUL).astimezone(UTC)

    async def paid(self, lines: Iterable[Line], *, on: date | datetime) -> OrderPaid:
        """Publish an OrderPaid of (product_id, quantity, unit_price[, category]) lines."""
        message = self.order(lines, on=on)
        await self.publish(message)
        return message

    def order(self, lines: Iterable[Line], *, on: date | datetime) -> OrderPaid:
        """An OrderPaid paid `on` a day (10:00 in Seoul) or at an instant."""
        paid_at = on if isinstance(on, datetime) else datetime.combine(on, time(10), SEOUL)
        sold = tuple(
            SoldLine(
                product_id=line[0],
                name=f"name of {line[0]}",
                category=line[3] if len(line) > 3 else "misc",
                quantity=line[1],
                unit_price=line[2],
            )
            for line in lines
        )
        return OrderPaid(
            order_id=str(uuid.uuid4()),
            user_id="u-1",
            lines=sold,
            subtotal=sum(s.quantity * s.unit_price for s in sold),
            discount=0,
            total=sum(s.quantity * s.unit_price for s in sold),
            paid_at=paid_at.astimezone(UTC),
        )

    async def publish(self, message: Message, *, envelope: Envelope | None = None) -> Envelope:
        sent = await self.kafka.publish(message, envelope=envelope)
        self.published.append(sent)
        return sent

    async def caught_up(self, envelopes: Iterable[Envelope] | None = None) -> None:
        """Wait until the projection recorded every given (default: published) message."""
        ids = list({e.message_id for e in (envelopes or self.published)})

        async def seen() -> int:
            conn = await asyncpg.connect(self.dsn)
            try:
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM inbox WHERE consumer = $1 AND message_id = ANY($2)",
                        CONSUMER,
                        ids,
                    )
                )
            finally:
                await conn.close()

        await poll(seen, until=lambda n: n == len(ids), timeout=30, message="projection lag")


@pytest.fixture
async def shop(
    kafka: KafkaProbe, analytics_db: str, clock: FrozenClock, analytics: httpx.AsyncClient
) -> Shop:
    return Shop(kafka, analytics_db, clock)


def days_ago(today: date, n: int) -> date:
    return today - timedelta(days=n)
