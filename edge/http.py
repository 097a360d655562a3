"""HTTP/1.1 on one connection as pure state: bytes in, requests or responses out, and the bytes
of a message to send. No I/O: the edge node and the simulated clients do that (h11's model).

Parsing is llhttp's, through httptools: every simulated connection parses a request on the edge
and a response on the client, and h11's pure-Python parser cost about a tenth of a connection
(profiled for issue 6). What llhttp leaves to its user lives here: bounds on every byte it
buffers or skips (head, trailers, chunk framing, body), one Host (RFC 9112, 3.2: exactly one on
HTTP/1.1, never two), HTTP/1.0 and 1.1 only, whether the connection goes on after a message,
and the check that what the simulator itself sends is well-formed.
"""

from __future__ import annotations

import http
import re
from collections.abc import Sequence

import attrs
import httptools

Headers = tuple[tuple[str, str], ...]  # names in lower case, values as sent (latin-1)
HEAD_SLACK = 1024  # bytes of a head the exact measure leaves out: request line, ends of lines

_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(r"[\x21-\x7e]+")
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class BadRequest(Exception):
    """The client's bytes are not a request this edge answers: `status` says how to refuse."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class BadResponse(Exception):
    """What came back is not an HTTP/1.1 response."""


@attrs.frozen
class Request:
    method: str
    target: str
    headers: Headers
    body: bytes
    keep_alive: bool  # the client lets the connection go on after the answer

    def header(self, name: str) -> str:
        """The first value of header `name` (lower case), or ""."""
        for key, value in self.headers:
            if key == name:
                return value
        return ""


@attrs.frozen
class Response:
    status: int
    headers: Headers
    body: bytes
    keep_alive: bool


class _Reader:
    """What both directions share: llhttp's callbacks collecting one message at a time, and a
    bound on what httptools buffers (a head's fields, a chunked body's trailer fields)."""

    def __init__(self, parser_type, *, max_head: int, max_body: int) -> None:
        self._parser = parser_type(self)
        self._max_head = max_head
        self._max_body = max_body
        self._messages: list = []
        self._error: Exception | None = None  # raised once the messages before it are taken
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()
        self._in_message = False
        self._in_body = False  # the head is complete: header fields now are trailers (dropped)
        self._ended = False  # no more messages will come: closed, or the last one said so
        # Buffered phases (a head; the trailer section after a chunk header) by serial number,
        # and the bytes counted in the current one; and the same for the stretches between
        # message boundaries, which bound what llhttp skips uncounted (chunk-size lines and
        # their extensions, blank lines between requests). See `_feed`.
        self._buffering = False
        self._phase = 0
        self._buffered = 0
        self._boundary = 0
        self._unbounded = 0

    def _buffer_phase(self, on: bool) -> None:
        self._buffering = on
        self._phase += 1
        self._buffered = 0

    def _cross_boundary(self) -> None:
        self._boundary += 1
        self._unbounded = 0

    def on_message_begin(self) -> None:
        self._cross_boundary()
        self._in_message = True
        self._in_body = False
        self._headers = []
        self._body = bytearray()
        self._buffer_phase(True)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_body:
            self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._in_body = True
        self._buffer_phase(False)

    def on_chunk_header(self) -> None:
        self._buffer_phase(True)  # the last chunk's trailer fields follow its header

    def on_chunk_complete(self) -> None:
        self._buffer_phase(False)

    def on_body(self, body: bytes) -> None:
        if self._buffering:
            self._buffer_phase(False)
        self._body += body
        if len(self._body) > self._max_body:
            raise BadRequest(413, "body too large")

    def _feed(self, data: bytes) -> None:
        """Parse `data`. A read that starts and ends within one buffered phase is all of that
        phase, so it is counted whole: what httptools holds stays under `max_head` plus one
        read, with no miscount of a pipelined neighbour (where in a read a message begins,
        llhttp does not say); the check is a memory guard with HEAD_SLACK for the request line
        and line ends, and a complete head is measured exactly as well. Reads within one message
        (or between two) are bounded the same way, by what a message may hold."""
        phase, buffering, boundary = self._phase, self._buffering, self._boundary
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._ended = True  # never switched: the message is answered, then the end
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, BadRequest):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserError:
            if not self._ended:
                raise
            # llhttp refuses bytes after a message that ended the connection; they are not read
        if buffering and self._buffering and self._phase == phase:
            self._buffered += len(data)
            if self._buffered > self._max_head + HEAD_SLACK:
                raise BadRequest(431, "header or trailer section too large")
        if self._boundary == boundary:
            self._unbounded += len(data)
            if self._in_message and self._unbounded > 2 * (self._max_head + self._max_body):
                raise BadRequest(413, "request framing too large")
            if not self._in_message and self._unbounded > self._max_head:
                raise BadRequest(400, "too many bytes between requests")

    def _complete(self, message) -> None:
        self._cross_boundary()
        self._in_message = False
        self._buffer_phase(False)
        self._messages.append(message)
        if not message.keep_alive:
            self._ended = True

    def _next(self):
        if self._messages:
            return self._messages.pop(0)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return None

    @property
    def ended(self) -> bool:
        """Nothing more will come: every message left is already parsed."""
        return self._ended


class RequestReader(_Reader):
    """The requests a client sends on one connection, in order; what makes one unanswerable
    (`BadRequest`) is raised by `next_request` once every request before it is taken, so a
    pipelined good request is still answered.

    `max_head` bounds the request line and headers (and a chunked body's trailer section,
    which is parsed but not kept), `max_body` the body.
    """

    def __init__(self, *, max_head: int, max_body: int) -> None:
        super().__init__(httptools.HttpRequestParser, max_head=max_head, max_body=max_body)
        self._target = bytearray()

    def receive(self, data: bytes) -> None:
        """Take what the client sent; b"" when it closed."""
        if self._ended:
            return  # a request ended the connection (or was bad): nothing after it is read
        try:
            if not data:
                self._ended = True
                if self._in_message:
                    raise BadRequest(400, "the client closed the connection mid-request")
                return
            try:
                self._feed(data)
            except httptools.HttpParserError as exc:
                raise BadRequest(400, str(exc) or type(exc).__name__) from None
        except BadRequest as exc:
            self._error, self._ended = exc, True

    def next_request(self) -> Request | None:
        """The next request, None if none is complete yet; raises BadRequest when the client's
        next bytes are not one."""
        return self._next()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target = bytearray()

    def on_url(self, piece: bytes) -> None:
        self._target += piece

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        size = len(self._target) + sum(len(k) + len(v) + 4 for k, v in self._headers)
        if size > self._max_head:
            raise BadRequest(431, "request head too large")
        version = self._parser.get_http_version()
        if version not in ("1.0", "1.1"):
            raise BadRequest(505, f"HTTP/{version} is not served here")
        hosts = sum(1 for name, _ in self._headers if name == "host")
        if hosts > 1 or (version == "1.1" and hosts == 0):
            raise BadRequest(400, "a request needs one Host header (HTTP/1.1), never two")
        length = next((v for k, v in self._headers if k == "content-length"), "")
        if length.isdigit() and int(length) > self._max_body:
            raise BadRequest(413, "request body too large")
        chunked = any(k == "transfer-encoding" for k, _ in self._headers)
        if self._parser.should_upgrade() and (chunked or length.strip("0")):
            # llhttp reads no body after an Upgrade or CONNECT: it would vanish unanswered
            raise BadRequest(400, "an Upgrade or CONNECT request cannot carry a body here")

    def on_message_complete(self) -> None:
        parser = self._parser
        self._complete(Request(
            method=parser.get_method().decode("ascii"),
            target=self._target.decode("latin-1"),
            headers=tuple(self._headers),
            body=bytes(self._body),
            # HTTP/1.0 closes after each answer (as the edge never says `keep-alive`), and
            # the edge switches to no other protocol
            keep_alive=(parser.get_http_version() == "1.1" and parser.should_keep_alive()
                        and not parser.should_upgrade()),
        ))


class ResponseReader(_Reader):
    """The responses on a client's connection, in order (never to HEAD requests: the
    simulated clients send GETs)."""

    def __init__(self, *, max_head: int = 64 * 1024, max_body: int = 16 * 1024 * 1024) -> None:
        super().__init__(httptools.HttpResponseParser, max_head=max_head, max_body=max_body)

    def receive(self, data: bytes) -> None:
        """Take what the server sent; b"" when it closed. Raises BadResponse."""
        if not data:
            self._ended = True
            if self._in_message:
                raise BadResponse("the server closed the connection mid-response")
            return
        try:
            self._feed(data)
        except (httptools.HttpParserError, BadRequest) as exc:
            raise BadResponse(str(exc) or type(exc).__name__) from None

    def next_response(self) -> Response | None:
        return self._next()

    def on_message_complete(self) -> None:
        parser = self._parser
        self._complete(Response(
            parser.get_status_code(), tuple(self._headers), bytes(self._body),
            parser.should_keep_alive(),
        ))


def response(status: int, body: bytes, content_type: str, *, close: bool = False,
             head: bool = False) -> bytes:
    """An answer's bytes; `head` leaves the body out (the answer to a HEAD request)."""
    lines = b"HTTP/1.1 %d %s\r\ncontent-length: %d\r\ncontent-type: %s\r\n" % (
        status, _REASONS.get(status, b""), len(body), content_type.encode("latin-1"))
    if close:
        lines += b"connection: close\r\n"
    return lines + b"\r\n" + (b"" if head else body)


def check_target(target: str) -> None:
    """Raises ValueError unless `target` can stand in a request line."""
    if not _TARGET.fullmatch(target):
        raise ValueError(f"not a request target (printable ASCII, no spaces): {target!r}")


def check_header(name: str, value: str) -> None:
    """Raises ValueError unless `name: value` can stand in a request's head."""
    if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
        raise ValueError(f"not a valid header: {name!r}: {value!r}")


def request(method: str, target: str, headers: Sequence[tuple[str, str]]) -> bytes:
    """A request's bytes (no body). Raises ValueError for anything that would not be a
    well-formed HTTP/1.1 request, so a simulated client never sends garbage by mistake."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    check_target(target)
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers:
        check_header(name, value)
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
