"""HTTP/1.1 on one connection as pure state: bytes in, requests or responses out, and the bytes
of a message to send. No I/O: the edge node and the simulated clients do that (h11's model).

Parsing is llhttp's, through httptools: every simulated connection parses a request on the edge
and a response on the client, and h11's pure-Python parser cost about a tenth of a connection
(profiled for issue 6). What llhttp leaves to its user lives here: the limits on a request's
head and body, exactly one Host on HTTP/1.1 (RFC 9112, 3.2), whether the connection goes on
after a message, and the check that what the simulator itself sends is well-formed.
"""

from __future__ import annotations

import http
import re
from collections.abc import Sequence

import attrs
import httptools

Headers = tuple[tuple[str, str], ...]  # names in lower case, values as sent (latin-1)

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
    """What both directions share: llhttp's callbacks collecting one message at a time."""

    def __init__(self, parser_type, max_body: int) -> None:
        self._parser = parser_type(self)
        self._max_body = max_body
        self._messages: list = []
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()
        self._in_message = False
        self._ended = False  # no more messages will come: closed, or the last one said so

    def on_message_begin(self) -> None:
        self._in_message = True
        self._headers = []
        self._body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._max_body:
            raise BadRequest(413, "request body too large")

    def _feed(self, data: bytes) -> None:
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

    def _complete(self, message) -> None:
        self._in_message = False
        self._messages.append(message)
        if not message.keep_alive:
            self._ended = True

    def _next(self):
        return self._messages.pop(0) if self._messages else None

    @property
    def ended(self) -> bool:
        """Nothing more will come: every message left is already parsed."""
        return self._ended


class RequestReader(_Reader):
    """The requests a client sends on one connection, in order.

    `max_head` bounds the request line and headers. While a head is incomplete, every byte of
    each read it spans is counted (llhttp does not say where in a read a message began), so a
    pipelined head is refused at most one read early; a complete head is measured exactly.
    """

    def __init__(self, *, max_head: int, max_body: int) -> None:
        super().__init__(httptools.HttpRequestParser, max_body)
        self._max_head = max_head
        self._target = bytearray()
        self._head_size = 0
        self._in_head = False

    def receive(self, data: bytes) -> None:
        """Take what the client sent; b"" when it closed. Raises BadRequest."""
        if self._ended:
            return  # a request ended the connection: nothing after it is read
        if not data:
            self._ended = True
            if self._in_message:
                raise BadRequest(400, "the client closed the connection mid-request")
            return
        try:
            self._feed(data)
        except httptools.HttpParserError as exc:
            raise BadRequest(400, str(exc) or type(exc).__name__) from None
        if self._in_head:
            self._head_size += len(data)
            if self._head_size > self._max_head:
                raise BadRequest(431, "request head too large")

    def next_request(self) -> Request | None:
        return self._next()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._target = bytearray()
        self._head_size = 0
        self._in_head = True

    def on_url(self, piece: bytes) -> None:
        self._target += piece

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self._target) + sum(len(k) + len(v) + 4 for k, v in self._headers)
        if size > self._max_head:
            raise BadRequest(431, "request head too large")
        hosts = sum(1 for name, _ in self._headers if name == "host")
        if self._parser.get_http_version() == "1.1" and hosts != 1:
            raise BadRequest(400, "an HTTP/1.1 request needs exactly one Host header")
        length = next((v for k, v in self._headers if k == "content-length"), "")
        if length.isdigit() and int(length) > self._max_body:
            raise BadRequest(413, "request body too large")

    def on_message_complete(self) -> None:
        parser = self._parser
        self._complete(Request(
            method=parser.get_method().decode("ascii"),
            target=self._target.decode("latin-1"),
            headers=tuple(self._headers),
            body=bytes(self._body),
            keep_alive=parser.should_keep_alive() and not parser.should_upgrade(),
        ))


class ResponseReader(_Reader):
    """The responses on a client's connection, in order (never to HEAD requests: the
    simulated clients send GETs)."""

    def __init__(self, *, max_body: int = 16 * 1024 * 1024) -> None:
        super().__init__(httptools.HttpResponseParser, max_body)

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
