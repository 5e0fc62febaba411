"""The request load is open loop: a slow answer does not hold the next requests back."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from stream_app.ops.bench.requests import fire, summarize
from stream_app.ops.testbed import free_port


async def test_requests_start_at_their_slots_whatever_earlier_answers_do():
    arrivals: dict[int, float] = {}

    async def handler(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        arrivals[i] = time.perf_counter()
        if i == 0:
            await asyncio.sleep(0.5)  # the first answer is slow
        return web.json_response({"latency_ms": 0.1})

    app = web.Application()
    app.router.add_get("/r/{i}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        results = await fire(f"http://127.0.0.1:{port}", [f"/r/{i}" for i in range(10)], rate=50.0)
    finally:
        await runner.cleanup()
    assert [s for s, _, _ in results] == [200] * 10
    # request 1 went out at its slot (20 ms after request 0), not after request 0's answer
    assert arrivals[1] - arrivals[0] < 0.4
    assert results[0][1] >= 500.0  # the slow answer's latency is counted in full
    assert all(ms < results[0][1] for _, ms, _ in results[1:])


def test_summary_counts_only_answered_requests_in_the_latency():
    s = summarize([5.0, 1.0, 900.0], statuses=[200, 200, 0], offered=3, seconds=2.0, compute_ms=[0.5, 0.7])
    assert s["answered"] == 2 and s["statuses"] == {"0": 1, "200": 2}
    assert s["request_p99_ms"] <= 5.0 and s["request_rate"] == 1.5 and s["compute_p50_ms"] == 0.6
