"""The confirmer: inputs are acknowledged only once their outputs are written."""

from __future__ import annotations

import asyncio

import pytest

from stream_app.core.delivery import Confirmer, Output, OutputFailed, failed


def done(value: object = "ok") -> asyncio.Future[object]:
    fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    fut.set_result(value)
    return fut


def out(delivery: object, topic: str = "recs") -> Output:
    return Output(topic, b"u-1", b"{}", None, None, delivery)


class FlakySender:
    """Fails the first ``failures`` resends, then writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[Output] = []

    async def resend(self, o: Output) -> Output:
        self.sent.append(o)
        if len(self.sent) <= self.failures:
            return out(failed(TimeoutError("broker away")), o.topic)
        return out(done(), o.topic)


async def run_until_drained(c: Confirmer) -> None:
    task = asyncio.create_task(c.run())
    try:
        await asyncio.wait_for(c.drain(), timeout=10)
    finally:
        task.cancel()


async def test_groups_are_acknowledged_in_order_once_written():
    acked: list[str] = []

    async def ack(h: str) -> None:
        acked.append(h)

    c = Confirmer(resend=None, ack=ack)
    slow: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    await c.confirm([out(slow)], ["a1", "a2"])
    await c.confirm([out(done()), None], ["b1"])
    task = asyncio.create_task(c.run())
    await asyncio.sleep(0.05)
    assert acked == []  # the first group's output is not written yet: nothing is acknowledged
    slow.set_result("written")
    await asyncio.wait_for(c.drain(), timeout=5)
    task.cancel()
    assert acked == ["a1", "a2", "b1"]


async def test_a_failed_output_is_sent_again_until_written():
    acked: list[str] = []

    async def ack(h: str) -> None:
        acked.append(h)

    sender = FlakySender(failures=2)
    c = Confirmer(resend=sender.resend, ack=ack, retry_s=10, backoff_s=0.01)
    await c.confirm([out(failed(TimeoutError("first try")))], ["h"])
    await run_until_drained(c)
    assert acked == ["h"] and len(sender.sent) == 3 and c.retried == 3 and c.failed is None


async def test_an_output_that_never_heals_is_fatal_and_nothing_is_acknowledged():
    acked: list[str] = []
    fatal: list[tuple[Output, BaseException]] = []

    async def ack(h: str) -> None:
        acked.append(h)

    sender = FlakySender(failures=10**6)
    c = Confirmer(resend=sender.resend, ack=ack, retry_s=0.2, backoff_s=0.02,
                  on_fatal=lambda o, e: fatal.append((o, e)))
    await c.confirm([out(failed(TimeoutError("gone")))], ["h1"])
    await c.confirm([out(done())], ["h2"])  # a later group is not acknowledged either
    task = asyncio.create_task(c.run())
    await asyncio.wait_for(c.drain(), timeout=5)
    await asyncio.sleep(0.05)
    assert acked == [] and len(fatal) == 1 and isinstance(c.failed, OutputFailed)
    assert task.done() and not task.cancelled()


async def test_confirming_waits_when_too_many_groups_are_pending():
    async def ack(h: str) -> None:
        pass

    c = Confirmer(resend=None, ack=ack, max_pending=2)
    await c.confirm([None], ["a"])
    await c.confirm([None], ["b"])
    third = asyncio.create_task(c.confirm([None], ["c"]))
    await asyncio.sleep(0.02)
    assert not third.done()  # back-pressure on the scorer and the ingest agent
    await run_until_drained(c)
    await asyncio.wait_for(third, timeout=1)


@pytest.mark.parametrize("error", [TimeoutError("t"), ValueError("record too large")])
async def test_failed_is_a_delivery_that_raises(error):
    with pytest.raises(type(error)):
        await failed(error)
