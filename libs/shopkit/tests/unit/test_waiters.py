import asyncio

from shopkit.waiters import Waiter, Waiters


async def test_a_waiter_counts_while_registered_and_is_gone_after() -> None:
    waiters: Waiters[Waiter] = Waiters(limit=2)
    with waiters.registered("order-1", Waiter()) as first:
        assert waiters.waiting == 1
        assert list(waiters.on("order-1")) == [first]
        with waiters.registered("order-1", Waiter()):
            assert waiters.full
        assert not waiters.full
    assert waiters.waiting == 0
    assert list(waiters.on("order-1")) == []


async def test_wake_all_wakes_every_key_and_woken_is_bounded() -> None:
    waiters: Waiters[Waiter] = Waiters(limit=10)
    with waiters.registered("a", Waiter()) as a, waiters.registered("b", Waiter()) as b:
        waiters.wake_all()
        await asyncio.wait_for(asyncio.gather(a.woken(5), b.woken(5)), 1)
        assert a.event.is_set() and b.event.is_set()
    lonely = Waiter()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await lonely.woken(0.05)
    assert not lonely.event.is_set() and loop.time() - started < 1
