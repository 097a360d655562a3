"""The simulated origin behind the edge: answers 200 and can remember what reached it."""

from __future__ import annotations

import attrs


@attrs.frozen
class OriginRequest:
    conn_id: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Origin:
    """`record=True` keeps every request (tests check forwarded headers with it)."""

    def __init__(self, *, record: bool = False) -> None:
        self.record = record
        self.received: list[OriginRequest] = []

    def handle(self, request: OriginRequest) -> tuple[int, bytes]:
        if self.record:
            self.received.append(request)
        return 200, b"ok\n"
