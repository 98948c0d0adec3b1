"""Fixtures for daemon tests: a tracked ZeroMQ context and raw peers (see tests/support)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import zmq

from tests.support.wire import Peer, zmq_context


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    with zmq_context() as ctx:
        yield ctx


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
