"""``python -m tests.support.job_client ADDRESS``: submit one long job, print its id once it
runs, then wait to be killed (the "client killed mid-job" fault)."""

from __future__ import annotations

import sys
import time

import zmq

from shared_protocol import Accepted, Generate

from .wire import Peer


def main() -> int:
    context = zmq.Context()
    peer = Peer(context, sys.argv[1])
    peer.hello(sys.argv[2] if len(sys.argv) > 2 else "doomed")
    request_id = peer.send(Generate(prompt="walk", duration_s=1.0, candidates=1, steps=200))
    _, accepted = peer.recv_until(Accepted, re=request_id)
    assert isinstance(accepted, Accepted)
    peer.until_running(request_id)
    print(accepted.job_id, flush=True)
    time.sleep(600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
