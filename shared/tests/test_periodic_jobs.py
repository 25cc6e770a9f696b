"""Periodic jobs: run on their interval, at once when woken, survive failures, stop on request."""

from __future__ import annotations

import asyncio

from crm_shared import run_periodically

LONG = 3_600.0  # an interval no test waits out


async def test_a_wake_runs_the_job_without_waiting_for_the_interval():
    stop, wake, ran = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def job() -> None:
        ran.set()

    loop = asyncio.create_task(run_periodically("job", LONG, job, stop=stop, wake=wake))
    wake.set()
    await asyncio.wait_for(ran.wait(), timeout=10)
    assert not wake.is_set()  # consumed by the run it caused
    stop.set()
    await asyncio.wait_for(loop, timeout=10)


async def test_a_failing_job_keeps_its_loop_alive():
    stop, wake = asyncio.Event(), asyncio.Event()
    runs: list[int] = []
    first_run, second_run = asyncio.Event(), asyncio.Event()

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            first_run.set()
            raise RuntimeError("first run fails")
        second_run.set()

    loop = asyncio.create_task(run_periodically("job", LONG, job, stop=stop, wake=wake))
    wake.set()
    await asyncio.wait_for(first_run.wait(), timeout=10)
    wake.set()
    await asyncio.wait_for(second_run.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(loop, timeout=10)
    assert runs == [0, 1]


async def test_stop_ends_a_waiting_loop_at_once_and_runs_nothing():
    stop = asyncio.Event()
    runs: list[None] = []

    async def job() -> None:
        runs.append(None)

    for wake in (None, asyncio.Event()):
        loop = asyncio.create_task(run_periodically("job", LONG, job, stop=stop, wake=wake))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(loop, timeout=10)
        stop.clear()
    assert runs == []


async def test_without_a_wake_the_job_runs_on_its_interval():
    stop = asyncio.Event()
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    loop = asyncio.create_task(run_periodically("job", 0.01, job, stop=stop))
    await asyncio.wait_for(ran.wait(), timeout=10)
    stop.set()
    await asyncio.wait_for(loop, timeout=10)
