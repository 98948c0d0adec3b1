"""The cancel board's long poll, on its own (the class Ray runs as an actor; no cluster needed).

A replica keeps one ``watch`` open per daemon; the end-to-end path (a cancel freeing a replica
within one step) is tests/cluster/test_ray_backend.py.
"""

from __future__ import annotations

import asyncio

from daemon.cluster.cancel_board import CancelBoard

_WAIT_S = 5.0


def test_a_first_watch_answers_at_once_with_what_the_board_holds() -> None:
    async def scenario() -> tuple[int, list[str]]:
        board = CancelBoard()
        await board.cancel(["a", "b"])
        return await asyncio.wait_for(board.watch(-1, 30.0), _WAIT_S)

    version, cancelled = asyncio.run(scenario())
    assert cancelled == ["a", "b"] and version == 1


def test_a_cancel_wakes_a_waiting_watch_with_the_whole_set() -> None:
    async def scenario() -> tuple[bool, tuple[int, list[str]]]:
        board = CancelBoard()
        await board.cancel(["a"])
        seen, _ = await asyncio.wait_for(board.watch(-1, 30.0), _WAIT_S)
        waiting = asyncio.ensure_future(board.watch(seen, 30.0))
        await asyncio.sleep(0.05)
        still_waiting = not waiting.done()
        await board.cancel(["b"])
        return still_waiting, await asyncio.wait_for(waiting, _WAIT_S)

    still_waiting, (version, cancelled) = asyncio.run(scenario())
    assert still_waiting  # nothing new: the poll stays open
    assert cancelled == ["a", "b"] and version == 2


def test_forgotten_ids_leave_the_watchers_copies_and_a_quiet_watch_times_out() -> None:
    async def scenario() -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
        board = CancelBoard()
        await board.cancel(["a", "b"])
        await board.forget(["a"])
        after_forget = await asyncio.wait_for(board.watch(1, 30.0), _WAIT_S)
        quiet = await asyncio.wait_for(board.watch(after_forget[0], 0.05), _WAIT_S)
        return after_forget, quiet

    after_forget, quiet = asyncio.run(scenario())
    assert after_forget == (2, ["b"])
    assert quiet == (2, ["b"])  # timed out: same version, same set
