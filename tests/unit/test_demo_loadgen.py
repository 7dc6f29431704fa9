"""The load generator in its own process: its buckets cross the pipe whole, the demo's recorder
keeps the newest copy of each, and a real child process sends the timeline's load."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web

from controller.demo.loadgen import (
    Bucket,
    LoadProcess,
    LoadProcessError,
    Outcome,
    PartPicker,
    Recorder,
    bucket_from_json,
    bucket_to_json,
)
from controller.demo.scenarios import (
    FaultEvent,
    Timeline,
    timeline_from_json,
    timeline_to_json,
)


def test_a_bucket_survives_the_pipe() -> None:
    recorder = Recorder()
    recorder.sent(3.2, 40.0)
    recorder.sent(3.4, 40.0)
    recorder.record(Outcome(3.2, 200, 4.2, "L1", "line-service-1"))
    recorder.record(Outcome(3.4, None, 5000.0))
    recorder.lag(3.5, 12.5)
    ((index, bucket),) = recorder.take_changed()
    again_index, again = bucket_from_json(bucket_to_json(index, bucket))
    assert again_index == index == 3
    assert again == bucket


def test_a_bucket_the_lag_opened_still_takes_its_rate_from_its_first_request() -> None:
    recorder = Recorder()
    recorder.lag(2.0, 7.0)  # the generator woke late before it sent anything in this second
    recorder.sent(2.1, 45.0)
    recorder.sent(2.6, 50.0)
    (only,) = recorder.ordered()
    assert (only.offered_rps, only.sent, only.generator_lag_ms) == (45.0, 2, 7.0)


def test_the_recorder_hands_over_only_changed_buckets_and_keeps_the_newest_copy() -> None:
    sender = Recorder()
    sender.sent(0.5, 10.0)
    sender.sent(1.5, 10.0)
    assert [index for index, _ in sender.take_changed()] == [0, 1]
    assert sender.take_changed() == []
    sender.record(Outcome(0.5, 200, 3.0))  # a late answer changes an older bucket
    assert [index for index, _ in sender.take_changed()] == [0]
    receiver = Recorder()
    receiver.put(0, Bucket(0.0, sent=1))
    receiver.put(0, Bucket(0.0, sent=1, ok=1))
    assert [(b.sent, b.ok) for b in receiver.ordered()] == [(1, 1)]


def test_a_timeline_survives_the_pipe() -> None:
    timeline = Timeline(
        "slow-replica",
        30.0,
        120.0,
        5.0,
        15.0,
        (10.0, 20.5),
        (FaultEvent("slow_replica", 40.0, 100.0, "n"),),
    )
    assert timeline_from_json(timeline_to_json(timeline)) == timeline


def test_parts_come_from_the_active_catalogue() -> None:
    picker = PartPicker(parts=300, seed=3)
    picks = {picker.pick() for _ in range(20000)}
    assert picks <= {f"P{k:05d}" for k in range(1, 301)}
    assert len(picks) > 250  # the long tail is drawn too


async def test_the_child_process_sends_the_load_and_reports_every_request(tmp_path: Path) -> None:
    answered = 0

    async def part(request: web.Request) -> web.Response:
        nonlocal answered
        answered += 1
        return web.Response(text="{}", headers={"X-Cache": "L1", "X-Pod": "p-0"})

    app = web.Application()
    app.router.add_get("/parts/{part_id}", part)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        timeline = Timeline("t", 1.0, 2.0, 0.0, 1.0, (50.0, 50.0, 50.0))
        recorder = Recorder()
        load = LoadProcess(timeline, [f"http://127.0.0.1:{port}"], recorder, tmp_path / "l.log")
        await load.open()
        await asyncio.wait_for(load.run(time.monotonic(), asyncio.Event()), 20)
        await load.close()
    finally:
        await runner.cleanup()
    buckets = recorder.ordered()
    sent = sum(b.sent for b in buckets)
    assert 80 <= sent <= 100  # 2 s at 50 req/s
    assert sum(b.ok for b in buckets) == sent == answered
    assert sum(b.cache["L1"] for b in buckets) == sent
    assert load.process is not None
    assert load.process.returncode == 0


async def test_a_stop_ends_the_child_early_with_its_buckets(tmp_path: Path) -> None:
    timeline = Timeline("t", 1.0, 60.0, 0.0, 1.0, (20.0, 20.0))
    recorder = Recorder()
    load = LoadProcess(timeline, ["http://127.0.0.1:9"], recorder, tmp_path / "l.log")
    await load.open()
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(time.monotonic(), stop))
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.wait_for(running, 20)
    await load.close()
    buckets = recorder.ordered()
    assert sum(b.sent for b in buckets) > 0
    assert sum(b.unanswered for b in buckets) == sum(b.sent for b in buckets)  # port 9: refused


async def test_a_child_that_dies_is_an_error_with_its_log(tmp_path: Path) -> None:
    timeline = Timeline("t", 1.0, 60.0, 0.0, 1.0, (20.0, 20.0))
    load = LoadProcess(timeline, ["http://127.0.0.1:9"], Recorder(), tmp_path / "l.log")
    await load.open()
    assert load.process is not None
    load.process.kill()
    with pytest.raises(LoadProcessError, match="died"):
        await asyncio.wait_for(load.run(time.monotonic(), asyncio.Event()), 20)
    await load.close()
