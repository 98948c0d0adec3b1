"""``python -m tests.daemon.bench_refusals``: what answering a refused request with its id costs
the daemon's event loop (``salvage_id``), for headers built to make that search slow, next to
decoding the largest valid request header (the baseline: what any client may cost it)."""

from __future__ import annotations

import contextlib
import json
import timeit
from collections.abc import Callable

from shared_protocol import REQUEST_LIMITS, SIGNATURE, ProtocolError, decode
from shared_protocol.schema import check_text
from shared_protocol.wire import salvage_id

REFUSED = {
    "another version (v 2.0)": {"v": "2.0", "type": "ping", "id": "keep-1", "body": {}},
    "40 KB string before the id": {"v": "1.0", "body": {"pad": "x" * 40_000}, "id": "late"},
    "30,000 short strings before the id": {"v": "1.0", "body": {"s": [""] * 30_000}, "id": "x"},
    "20,000 brackets before the id": {"v": "1.0", "body": {"t": [[]] * 20_000}, "id": "x"},
}
#: The baseline: a valid ping whose header is just under the 32 KiB limit.
LARGEST_VALID = {"v": "1.0", "type": "ping", "id": "b", "body": {"pad": "x" * 32_600}}


def per_call_us(function: Callable[[], object], number: int = 200) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def decoded(frames: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        decode(frames, REQUEST_LIMITS)


def main() -> None:
    valid = [SIGNATURE, json.dumps(LARGEST_VALID).encode()]
    baseline = per_call_us(lambda: decoded(valid))
    print(f"baseline: decode of a valid {len(valid[1]):,}-byte header: {baseline:.1f} us")
    for name, header in REFUSED.items():
        raw = json.dumps(header).encode()
        cost = per_call_us(lambda raw=raw: salvage_id(raw))  # type: ignore[misc]
        print(f"salvage_id, {name}: {cost:.1f} us ({cost / baseline:.2f} x baseline)")
    prompt = "a person walks forward and waves " * 30
    cost = per_call_us(lambda: check_text("prompt", prompt), 2000)
    print(f"check_text, {len(prompt)}-character prompt: {cost:.1f} us")


if __name__ == "__main__":
    main()
