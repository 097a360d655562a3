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


def _refusal(reader: http.RequestReader, *reads: bytes) -> int:
    """Feed `reads`; the status of the refusal `next_request` raises once the good ones are
    taken."""
    for data in reads:
        reader.receive(data)
    with pytest.raises(http.BadRequest) as refused:
        _drain(reader)
    return refused.value.status


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
    reads = [b"GET / HTTP/1.1\r\nHost: h\r\n"] + [b"X-Pad: " + b"a" * 20 + b"\r\n"] * 50
    assert _refusal(_reader(max_head=100), *reads) == 431


def test_one_header_growing_over_many_reads_is_refused_before_it_ends():
    reads = [b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: "] + [b"a" * 50] * 30
    assert _refusal(_reader(max_head=200), *reads) == 431


def test_a_trailer_section_is_bounded_like_a_head_and_not_kept():
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    assert _refusal(_reader(max_head=200), head, b"X-T: ", *[b"b" * 50] * 30) == 431
    reader = _reader()
    reader.receive(head + b"Host: evil\r\nX-T: 1\r\n\r\n")
    (request,) = _drain(reader)
    assert request.body == b"a" and [k for k, _ in request.headers] == ["host", "transfer-encoding"]


def test_a_pipelined_head_is_never_counted_with_its_neighbour():
    """A large request and the start of the next in one read: the second is not refused."""
    reader = _reader(max_head=100, max_body=10_000)
    reader.receive(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
                   + b"GET /next HTTP/1.1\r\n")
    reader.receive(b"Host: h\r\n\r\n")
    assert [r.target for r in _drain(reader)] == ["/", "/next"]


def test_a_good_request_before_a_bad_one_is_still_answered():
    reader = _reader()
    reader.receive(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert reader.next_request().target == "/a"
    with pytest.raises(http.BadRequest) as refused:
        reader.next_request()
    assert refused.value.status == 400 and reader.ended


@pytest.mark.parametrize(
    "head, status",
    [
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ],
)
def test_host_and_version_rules(head, status):
    assert _refusal(_reader(), head) == status


def test_http_1_0_never_keeps_the_connection():
    reader = _reader()
    reader.receive(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    (request,) = _drain(reader)
    assert not request.keep_alive and reader.ended


def test_a_complete_head_over_the_limit_in_one_read_is_refused():
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    assert _refusal(_reader(max_head=100), head) == 431


def test_a_declared_body_over_the_limit_is_refused_before_it_arrives():
    head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n"
    assert _refusal(_reader(max_body=10), head) == 413


def test_a_chunked_body_over_the_limit_is_refused():
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert _refusal(_reader(max_body=10), head, b"b\r\n" + b"x" * 11 + b"\r\n0\r\n\r\n") == 413


def test_a_close_mid_request_is_a_bad_request_and_between_requests_the_end():
    assert _refusal(_reader(), b"GET / HTTP/1.1\r\nHo", b"") == 400
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


def test_a_head_at_the_limit_passes_however_it_is_split():
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 1000 + b"\r\n\r\n"
    exact = len(b"/") + len(b"hosth") + 4 + len(b"X") + 1000 + 4
    for split in (1, 20, len(head) - 1):
        reader = _reader(max_head=exact)
        reader.receive(head[:split])
        reader.receive(head[split:])
        assert len(_drain(reader)) == 1


@pytest.mark.parametrize(
    "reads, status",
    [
        pytest.param([b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;e="]
                     + [b"a" * 1000] * 10, 413, id="endless-chunk-extension"),
        pytest.param([b"\r\n" * 500] * 3, 400, id="blank-lines-before-a-request"),
        pytest.param([b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                      b"Content-Length: 5\r\n\r\nhello"], 400, id="upgrade-with-a-body"),
    ],
)
def test_what_llhttp_skips_is_bounded_too(reads, status):
    assert _refusal(_reader(max_head=1000, max_body=1000), *reads) == status


_GOOD = PIPELINE + b"GET /e HTTP/1.1\r\nHost: h\r\n\r\n"


@given(st.data())
def test_any_bytes_give_requests_or_one_refusal_and_nothing_else(data):
    """Garbage, or a good pipeline with bytes flipped, inserted or cut, split anywhere: the
    reader yields requests and at most one BadRequest, never another exception, and stays
    within its bounds."""
    if data.draw(st.booleans()):
        stream = data.draw(st.binary(max_size=600))
    else:
        stream = bytearray(_GOOD)
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(stream)))
            stream[at:at + data.draw(st.integers(0, 3))] = data.draw(st.binary(max_size=4))
        stream = bytes(stream)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    reader = _reader(max_head=200, max_body=100)
    refusals = 0
    for start, end in zip([0, *cuts], [*cuts, len(stream)]):
        if start == end:
            continue
        reader.receive(stream[start:end])
        while True:
            try:
                request = reader.next_request()
            except http.BadRequest as refused:
                assert refused.status in (400, 413, 431, 505)
                refusals += 1
                continue
            if request is None:
                break
            assert len(request.body) <= 100
    reader.receive(b"")
    try:
        _drain(reader)
    except http.BadRequest:
        refusals += 1
    assert refusals <= 1 and reader.ended
