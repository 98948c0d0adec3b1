"""A raw DEALER peer for protocol tests: send typed messages, receive with a timeout."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence

import zmq

from shared_protocol import (
    REPLY_LIMITS,
    Envelope,
    Hello,
    Message,
    Progress,
    decode,
    encode,
    new_id,
)
from shared_protocol.messages import parse_reply

RECV_TIMEOUT_S = 10.0


@contextlib.contextmanager
def zmq_context(term_timeout_s: float = 10.0) -> Iterator[zmq.Context]:
    """A ZeroMQ context terminated on exit. Terminating with an open socket hangs: fail the
    test instead of hanging the suite."""
    ctx = zmq.Context()
    yield ctx
    done = threading.Thread(target=ctx.term, daemon=True)
    done.start()
    done.join(term_timeout_s)
    assert not done.is_alive(), "context.term() hung: a socket was left open"


class Peer:
    """One DEALER connection. Every receive has a timeout; ``TimeoutError`` when it expires."""

    def __init__(self, context: zmq.Context, address: str, **curve: bytes) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.linger = 0
        # A DEALER with no connected peer blocks on send; fail instead of hanging a test.
        self.socket.sndtimeo = int(RECV_TIMEOUT_S * 1000)
        for name, value in curve.items():  # curve_serverkey / curve_publickey / curve_secretkey
            setattr(self.socket, name, value)
        self.socket.connect(address)

    def send(self, message: Message, msg_id: str | None = None) -> str:
        msg_id = msg_id or new_id()
        self.socket.send_multipart(encode(message.envelope(msg_id=msg_id)))
        return msg_id

    def send_raw(self, frames: Sequence[bytes]) -> None:
        self.socket.send_multipart(list(frames))

    def recv(self, timeout_s: float = RECV_TIMEOUT_S) -> tuple[Envelope, Message | None]:
        if not self.socket.poll(int(timeout_s * 1000), zmq.POLLIN):
            raise TimeoutError(f"nothing received within {timeout_s} s")
        envelope = decode(self.socket.recv_multipart(), REPLY_LIMITS)
        return envelope, parse_reply(envelope)

    def recv_until(
        self,
        predicate: type[Message] | tuple[type[Message], ...],
        re: str | None = None,
        timeout_s: float = RECV_TIMEOUT_S,
    ) -> tuple[Envelope, Message]:
        """Skip messages until one of the given type(s) (answering ``re`` if given) arrives."""
        deadline = time.monotonic() + timeout_s
        while True:
            envelope, message = self.recv(max(0.0, deadline - time.monotonic()))
            if isinstance(message, predicate) and (re is None or envelope.re == re):
                return envelope, message

    def until_running(self, request_id: str, timeout_s: float = RECV_TIMEOUT_S) -> Progress:
        """Skip messages until the job of ``request_id`` reports a stage past "queued"."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            _, progress = self.recv_until(Progress, re=request_id, timeout_s=left)
            assert isinstance(progress, Progress)
            if progress.stage != "queued":
                return progress

    def hello(self, artist: str = "alice") -> Message:
        msg_id = self.send(Hello(artist=artist, client="tests"))
        return self.recv_until(Message, re=msg_id)[1]

    def close(self) -> None:
        self.socket.close(linger=0)
