"""HTTP/1.1 framing at the edge, byte for byte: what a client sends decides what it gets back,
what reaches the origin, and which request events the collector sees."""

from __future__ import annotations

import functools
import re

import pytest
import trio

from edge.events import Decision, TlsOutcome
from edge.node.origin import Origin
from edge.pki import profiles
from edge.pki.issuer import Authority
from edge.pki.profiles import Profile
from edge_world import BLOCK_HOST, START, EdgeWorld

HOST = f"Host: {BLOCK_HOST}\r\n".encode()
STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) ")


@functools.cache
def tenant() -> Authority:
    return Authority.root({"CN": "HTTP Root"})


async def _exchange(world: EdgeWorld, data: bytes) -> tuple[str, bytes]:
    """Send `data` on a verified connection and read everything until the edge closes it."""
    credential = profiles.issue(Profile.VALID, tenant(), now=START)
    channel, conn_id = await world.open_channel(credential, sni=BLOCK_HOST)
    await channel.send_all(data)
    answer = b""
    with trio.fail_after(120):  # virtual: past the node's idle timeout
        while chunk := await channel.receive_some():
            answer += chunk
    await channel.aclose()
    await world.drain()
    return conn_id, answer


async def _world(nursery) -> EdgeWorld:
    world = await EdgeWorld.start(nursery, tenant())
    world.deployment.nodes["n1"].origin = Origin(record=True)
    return world


def _statuses(answer: bytes) -> list[int]:
    return [int(code) for code in STATUS.findall(answer)]


async def test_pipelined_requests_are_answered_in_order(nursery, autojump_clock):
    world = await _world(nursery)
    conn_id, answer = await _exchange(
        world, b"GET /a HTTP/1.1\r\n" + HOST + b"\r\nGET /b?x=1 HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    assert _statuses(answer) == [200, 200]
    assert [e.path for e in world.collector.requests(conn_id)] == ["/a", "/b"]
    assert [r.target for r in world.deployment.nodes["n1"].origin.received] == ["/a", "/b?x=1"]
    assert world.collector.connection(conn_id).requests == 2


async def test_connection_close_ends_the_connection_after_its_answer(nursery, autojump_clock):
    world = await _world(nursery)
    conn_id, answer = await _exchange(
        world,
        b"GET /a HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\nGET /b HTTP/1.1\r\n" + HOST
        + b"\r\n",
    )
    assert _statuses(answer) == [200]
    assert [e.path for e in world.collector.requests(conn_id)] == ["/a"]


async def test_http_1_0_gets_one_answer_and_a_close(nursery, autojump_clock):
    world = await _world(nursery)
    conn_id, answer = await _exchange(world, b"GET /old HTTP/1.0\r\n" + HOST + b"\r\n")
    assert _statuses(answer) == [200]
    assert b"ok\n" in answer
    assert world.collector.connection(conn_id).requests == 1


async def test_request_bodies_reach_the_origin_whatever_their_framing(nursery, autojump_clock):
    world = await _world(nursery)
    await _exchange(
        world,
        b"POST /len HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"
        + b"POST /chunked HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    )
    received = world.deployment.nodes["n1"].origin.received
    assert [(r.method, r.target, r.body) for r in received] == [
        ("POST", "/len", b"hello"), ("POST", "/chunked", b"abcde")
    ]


async def test_client_headers_reach_the_origin_as_sent(nursery, autojump_clock):
    world = await _world(nursery)
    await _exchange(world, b"GET / HTTP/1.1\r\n" + HOST + b"X-Trace: a b\r\nX-Trace: c\r\n\r\n")
    (received,) = world.deployment.nodes["n1"].origin.received
    assert [v for k, v in received.headers if k.lower() == "x-trace"] == ["a b", "c"]


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET / HTTP/1.1\r\n" + HOST + HOST + b"\r\n", id="two-hosts"),
        pytest.param(b"GET /\x01 HTTP/1.1\r\n" + HOST + b"\r\n", id="control-in-target"),
        pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"Bad Header: x\r\n\r\n", id="space-in-name"),
        pytest.param(b"GET / HTTP/1.1\r\n" + HOST + b"X: a\rb\r\n\r\n", id="bare-cr-in-value"),
        pytest.param(b"\x16\x03\x01garbage\r\n\r\n", id="not-http"),
        pytest.param(
            b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            id="conflicting-lengths",
        ),
        pytest.param(b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n", id="negative-length"),
    ],
)
async def test_malformed_requests_get_400_and_close(nursery, autojump_clock, request_bytes):
    world = await _world(nursery)
    conn_id, answer = await _exchange(
        world, request_bytes + b"GET /after HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    assert _statuses(answer) == [400]
    (refused,) = world.collector.requests(conn_id)
    assert refused.decision is Decision.BAD_REQUEST and refused.status == 400
    assert world.deployment.nodes["n1"].origin.received == []
    event = world.collector.connection(conn_id)
    assert event.outcome is TlsOutcome.OK and event.requests == 1


async def test_a_body_over_the_limit_gets_413(nursery, autojump_clock):
    world = await _world(nursery)
    limit = world.deployment.nodes["n1"].settings.max_body_bytes
    conn_id, answer = await _exchange(
        world,
        b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % (limit + 1)
        + b"x" * (limit + 1),
    )
    assert _statuses(answer) == [413]
    (refused,) = world.collector.requests(conn_id)
    assert refused.decision is Decision.BAD_REQUEST and refused.status == 413
    assert world.deployment.nodes["n1"].origin.received == []


async def test_head_gets_the_headers_without_a_body(nursery, autojump_clock):
    world = await _world(nursery)
    conn_id, answer = await _exchange(
        world, b"HEAD / HTTP/1.1\r\n" + HOST + b"\r\nGET / HTTP/1.1\r\n" + HOST + b"\r\n"
    )
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert _statuses(head) == [200] and b"content-length: 3" in head.lower()
    assert _statuses(rest) == [200] and rest.endswith(b"\r\n\r\nok\n")
    assert [e.method for e in world.collector.requests(conn_id)] == ["HEAD", "GET"]


async def test_a_good_request_pipelined_before_a_bad_one_is_answered_first(nursery, autojump_clock):
    world = await _world(nursery)
    conn_id, answer = await _exchange(
        world, b"GET /a HTTP/1.1\r\n" + HOST + b"\r\nGET /b HTTP/1.1\r\n\r\n"
    )
    assert _statuses(answer) == [200, 400]
    assert [r.target for r in world.deployment.nodes["n1"].origin.received] == ["/a"]
    assert [e.decision for e in world.collector.requests(conn_id)] == [
        Decision.ALLOW, Decision.BAD_REQUEST
    ]


async def test_http_1_0_asking_to_keep_alive_is_told_the_connection_closes(nursery, autojump_clock):
    world = await _world(nursery)
    _, answer = await _exchange(world, b"GET / HTTP/1.0\r\n" + HOST + b"Connection: keep-alive\r\n\r\n")
    assert _statuses(answer) == [200] and b"\r\nconnection: close\r\n" in answer


async def test_a_simulated_client_says_its_last_request_is_the_last(nursery, autojump_clock):
    """visit() keeps the connection alive between its requests and sends `Connection: close`
    on the last one, so the edge closes after that answer instead of waiting for the client."""
    world = await _world(nursery)
    credential = profiles.issue(Profile.VALID, tenant(), now=START)
    result = await world.visit(credential, sni=BLOCK_HOST, paths=("/a", "/b", "/c"))
    await world.drain()
    assert result.outcome is TlsOutcome.OK and result.statuses == (200, 200, 200)
    received = world.deployment.nodes["n1"].origin.received
    closing = [("connection", "close") in [(n.lower(), v) for n, v in r.headers] for r in received]
    assert closing == [False, False, True]
    assert world.collector.connection(result.conn_id).requests == 3
