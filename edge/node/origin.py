"""The simulated origin behind the edge: answers 200 and can remember what reached it."""

from __future__ import annotations

import json

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

    content_type = "text/plain"

    def __init__(self, *, record: bool = False) -> None:
        self.record = record
        self.received: list[OriginRequest] = []

    def handle(self, request: OriginRequest) -> tuple[int, bytes]:
        if self.record:
            self.received.append(request)
        return 200, b"ok\n"


class EchoOrigin(Origin):
    """The origin behind `edge serve`: its answer is the request as it arrived, so a real
    client sees which certificate headers the edge forwarded (and that its own copies did not
    get through)."""

    content_type = "application/json"

    def handle(self, request: OriginRequest) -> tuple[int, bytes]:
        super().handle(request)
        headers: dict[str, str] = {}
        for name, value in request.headers:
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        seen = {"method": request.method, "path": request.target, "headers": headers}
        return 200, (json.dumps(seen, indent=2, sort_keys=True) + "\n").encode()
