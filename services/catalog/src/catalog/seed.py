"""Demo products for `make dev`: `await seed_demo(db)`, or `python -m catalog.seed`."""

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from catalog import service
from catalog.models import Product
from catalog.settings import Settings
from shopkit.clock import Clock, system_clock
from shopkit.db import Database

DEMO: tuple[tuple[str, str, int, int, str], ...] = (
    ("노트북 14인치", "ELECTRONICS", 1_290_000, 15, "가벼운 업무용 노트북"),
    ("무선 이어폰", "ELECTRONICS", 159_000, 40, "노이즈 캔슬링"),
    ("기계식 키보드", "ELECTRONICS", 89_000, 25, "갈축"),
    ("USB-C 충전기 65W", "ELECTRONICS", 39_000, 0, "품절 데모 상품"),
    ("면 티셔츠", "FASHION", 19_900, 100, "기본 흰색"),
    ("청바지", "FASHION", 59_000, 30, "스트레이트 핏"),
    ("운동화", "FASHION", 99_000, 10, "러닝용"),
    ("제주 감귤 5kg", "FOOD", 29_900, 50, "산지 직송"),
    ("원두 커피 1kg", "FOOD", 32_000, 20, "미디엄 로스트"),
    ("한정판 초콜릿", "FOOD", 12_000, 3, "선착순 한정 수량"),
    ("파이썬 프로그래밍", "BOOKS", 32_000, 12, "입문서"),
    ("분산 시스템 설계", "BOOKS", 45_000, 8, "Kafka와 이벤트 기반 설계"),
    ("머그컵", "HOME", 9_900, 60, "350ml"),
    ("호텔 수건 세트", "HOME", 24_900, 35, "4장"),
    ("요가 매트", "SPORTS", 27_000, 18, "6mm"),
    ("덤벨 5kg", "SPORTS", 35_000, 0, "품절 데모 상품"),
    ("수분 크림", "BEAUTY", 28_000, 22, "민감성 피부용"),
    ("선크림", "BEAUTY", 18_000, 45, "SPF50+"),
    ("블록 장난감", "TOYS", 49_000, 14, "500피스"),
    ("보드게임", "TOYS", 36_000, 9, "2-6인용"),
)


async def seed_demo(db: Database, *, clock: Clock = system_clock) -> int:
    """Create the demo products unless the catalog already has products; how many were made."""
    async with db.sessions() as session:
        if (await session.execute(select(func.count()).select_from(Product))).scalar_one():
            return 0
    start = clock()
    for i, (name, category, price, stock, description) in enumerate(DEMO):
        await service.create_product(
            db,
            name=name,
            category=category,
            price=price,
            stock=stock,
            description=description,
            # Distinct times so "newest" shows a stable, meaningful order.
            now=start - timedelta(minutes=len(DEMO) - i),
        )
    return len(DEMO)


async def _main() -> None:
    db = Database(Settings().database_url, pool_size=1)
    try:
        made = await seed_demo(db)
        print(f"[catalog] seeded {made} demo products")
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(_main())
