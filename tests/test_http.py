"""edge/http.py without an event loop: bytes in, requests and responses out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge import http

PIPELINE = (
    b"GET /a HTTP/1.1\r\nHost: h\r\nX-One: 1\r\n\r\n"
    b"POST /b?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
    b"GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
)


def _reader(**limits) -> http.RequestReader:
    return http.RequestReader(**{"max_head": 1024, "max_body": 1024, **limits})


def _drain(reader: http.RequestReader) -> list[http.Request]:
    requests = []
    while (request := reader.next_request()) is not None:
        requests.append(request)
    return requests


@given(st.lists(st.integers(0, len(PIPELINE)), max_size=12))
def test_requests_do_not_depend_on_how_the_bytes_were_split(cuts):
    reader, bounds = _reader(), sorted({0, *cuts, len(PIPELINE)})
    for start, end in zip(bounds, bounds[1:]):
        reader.receive(PIPELINE[start:end])
    requests = _drain(reader)
    assert [(r.method, r.target, r.body, r.keep_alive) for r in requests] == [
        ("GET", "/a", b"", True), ("POST", "/b?q=1", b"hello", True),
        ("PUT", "/c", b"ab", True), ("GET", "/d", b"", False),
    ]
    assert requests[0].header("x-one") == "1" and requests[0].header("missing") == ""
    assert reader.ended


def test_the_head_limit_counts_a_head_spread_over_reads():
    reader = _reader(max_head=100)
    reader.receive(b"GET / HTTP/1.1\r\nHost: h\r\n")
    with pytest.raises(http.BadRequest) as refused:
        for _ in range(10):
            reader.receive(b"X-Pad: " + b"a" * 20 + b"\r\n")
    assert refused.value.status == 431


def test_a_complete_head_over_the_limit_in_one_read_is_refused():
    with pytest.raises(http.BadRequest) as refused:
        _reader(max_head=100).receive(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 200 + b"\r\n\r\n")
    assert refused.value.status == 431


def test_a_declared_body_over_the_limit_is_refused_before_it_arrives():
    with pytest.raises(http.BadRequest) as refused:
        _reader(max_body=10).receive(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n")
    assert refused.value.status == 413


def test_a_chunked_body_over_the_limit_is_refused():
    reader = _reader(max_body=10)
    reader.receive(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(http.BadRequest) as refused:
        reader.receive(b"b\r\n" + b"x" * 11 + b"\r\n0\r\n\r\n")
    assert refused.value.status == 413


def test_a_close_mid_request_is_a_bad_request_and_between_requests_the_end():
    reader = _reader()
    reader.receive(b"GET / HTTP/1.1\r\nHo")
    with pytest.raises(http.BadRequest):
        reader.receive(b"")
    idle = _reader()
    idle.receive(b"")
    assert idle.ended and idle.next_request() is None


def test_an_upgrade_is_answered_as_a_plain_request_and_ends_the_connection():
    reader = _reader()
    reader.receive(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    (request,) = _drain(reader)
    assert not request.keep_alive and reader.ended


def test_answers_name_their_length_and_leave_the_body_out_for_head():
    full = http.response(403, b"no\n", "text/plain", close=True)
    assert full == (b"HTTP/1.1 403 Forbidden\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n"
                    b"connection: close\r\n\r\nno\n")
    assert http.response(200, b"ok\n", "text/plain", head=True).endswith(b"\r\n\r\n")


def test_a_response_reader_reads_what_the_edge_writes():
    reader = http.ResponseReader()
    answer = http.response(200, b"ok\n", "text/plain") + http.response(421, b"", "text/plain",
                                                                        close=True)
    reader.receive(answer[:7])
    assert reader.next_response() is None
    reader.receive(answer[7:])
    first, second = reader.next_response(), reader.next_response()
    assert (first.status, first.body, first.keep_alive) == (200, b"ok\n", True)
    assert (second.status, second.keep_alive) == (421, False) and reader.ended


def test_a_response_cut_short_is_an_error():
    reader = http.ResponseReader()
    reader.receive(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
    with pytest.raises(http.BadResponse):
        reader.receive(b"")


@pytest.mark.parametrize(
    "method, target, headers",
    [("GE T", "/", []), ("GET", "/a b", []), ("GET", "", []), ("GET", "/", [("X", "a\r\nY: b")]),
     ("GET", "/", [("Bad Name", "v")])],
)
def test_the_simulator_never_sends_a_malformed_request(method, target, headers):
    with pytest.raises(ValueError):
        http.request(method, target, headers)


def test_a_request_the_simulator_sends_parses_back_the_same():
    reader = _reader()
    reader.receive(http.request("GET", "/x?y=%20", [("host", "h"), ("x-a", "b c")]))
    (request,) = _drain(reader)
    assert (request.method, request.target, request.headers) == (
        "GET", "/x?y=%20", (("host", "h"), ("x-a", "b c"))
    )
