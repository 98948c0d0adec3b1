"""Fixtures for daemon tests: a tracked ZeroMQ context and raw peers (see tests/support)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import zmq

from tests.support.wire import Peer


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    # Terminating with an open socket hangs; fail instead of hanging the suite.
    done = threading.Thread(target=ctx.term, daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive(), "context.term() hung: a socket was left open"


@pytest.fixture
def peers(context: zmq.Context) -> Iterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(address: str, **curve: bytes) -> Peer:
        peer = Peer(context, address, **curve)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()
