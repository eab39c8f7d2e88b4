"""The start gate admits server starts a few at a time, in arrival order (no convoy)."""

from __future__ import annotations

import asyncio

from labfleet.spawn.readiness import StartGate, start_gate


def test_starts_are_admitted_in_arrival_order_one_slot_at_a_time() -> None:
    order: list[str] = []

    async def scene() -> None:
        gate = StartGate(slots=1)
        ready = [asyncio.Event() for _ in range(3)]

        async def start(i: int) -> None:
            async with gate.slot():
                order.append(f"launch {i}")
                await ready[i].wait()
                order.append(f"listening {i}")

        tasks = [asyncio.create_task(start(i)) for i in range(3)]
        for event in ready:
            await asyncio.sleep(0.01)
            event.set()
        await asyncio.gather(*tasks)

    asyncio.run(scene())
    assert order == [
        "launch 0",
        "listening 0",
        "launch 1",
        "listening 1",
        "launch 2",
        "listening 2",
    ]


def test_two_slots_let_two_starts_overlap_and_the_third_wait() -> None:
    async def scene() -> list[int]:
        gate = StartGate(slots=2)
        first, second = await gate.admit(), await gate.admit()
        third = asyncio.create_task(gate.admit())
        await asyncio.sleep(0)
        seen = [gate.free, int(third.done())]
        first.release()
        first.release()  # idempotent: frees one slot, not two
        (await third).release()
        second.release()
        seen.append(gate.free)
        return seen

    assert asyncio.run(scene()) == [0, 0, 2]


def test_a_start_that_never_answers_gives_its_slot_back() -> None:
    async def scene() -> bool:
        gate = StartGate(slots=1, hold_max=0.05)
        await gate.admit()  # a hung server: never released by its start
        follower = await asyncio.wait_for(gate.admit(), timeout=30)
        follower.release()
        return True

    assert asyncio.run(scene())


def test_each_event_loop_has_its_own_gate_sized_to_the_cores() -> None:
    async def one() -> StartGate:
        return start_gate()

    first, second = asyncio.run(one()), asyncio.run(one())
    assert first is not second and first.slots >= 2
