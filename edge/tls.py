"""TLS over any Trio byte stream, driven by hand around `ssl.SSLObject` and two MemoryBIOs.

Why not `trio.SSLStream`: a connection here is one task doing one thing at a time (handshake,
then request, response, request...), so the locking and concurrent-use machinery of SSLStream is
overhead, and the edge needs the `SSLObject` itself (for the SNI callback, OpenSSL's verdict and
validation at simulated time). Used by edge nodes and simulated clients alike.

Not a `trio.abc.Stream`, and not a checkpoint on every call: `receive_some` returns bytes
OpenSSL already decrypted without awaiting anything, and over a stream that takes bytes at once
(`send_nowait`, the in-memory pipe) sending is not a checkpoint either, nor are reading bytes
the stream already holds (`receive_nowait`) and closing a stream that closes at once
(`close_nowait`). Every loop over a channel waits on a receive of the stream when it has
nothing left to read, and that wait is where it yields and where cancellation reaches it.
"""

from __future__ import annotations

import ssl

import trio

RECEIVE_SIZE = 65536
CLOSE_TIMEOUT = 5.0  # seconds to send close_notify to a peer that may not read any more


class TlsClosed(Exception):
    """The peer went away before the operation could complete."""


class TlsChannel:
    def __init__(self, stream: trio.abc.Stream, ssl_object: ssl.SSLObject,
                 incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO) -> None:
        self.stream = stream
        self.ssl_object = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._send_nowait = getattr(stream, "send_nowait", None)
        self._receive_nowait = getattr(stream, "receive_nowait", None)

    @classmethod
    def wrap(
        cls,
        stream: trio.abc.Stream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> TlsChannel:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )
        return cls(stream, ssl_object, incoming, outgoing)

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if not data:
            return
        if self._send_nowait is not None:
            self._send_nowait(data)  # no scheduler pass before the wait that always follows
        else:
            await self.stream.send_all(data)

    async def _fill(self) -> None:
        data = self._receive_nowait(RECEIVE_SIZE) if self._receive_nowait is not None else None
        if data is None:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        if not data:
            self._incoming.write_eof()
            raise TlsClosed("peer closed the connection")
        self._incoming.write(data)

    async def handshake(self, *, flush: bool = True) -> None:
        """Run the handshake to its end; raises ssl.SSLError or TlsClosed on failure.

        `flush=False` keeps the last flight (a client's Finished) buffered, so that the first
        `send_all` carries it together with the first request: one flight fewer.
        """
        while True:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                await self._fill()
            except ssl.SSLError:
                await self._flush_quietly()  # let the peer see our alert
                raise
            else:
                if flush:
                    await self._flush()
                return

    def receive_nowait(self) -> bytes | None:
        """Decrypted bytes already here (b"" when the peer closed), or None: there are none
        without waiting."""
        try:
            return self.ssl_object.read(RECEIVE_SIZE)
        except ssl.SSLWantReadError:
            return None
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    async def receive_some(self) -> bytes:
        """Decrypted bytes; b"" when the peer closed (cleanly or not)."""
        while (data := self.receive_nowait()) is None:
            await self._flush()  # TLS 1.3 may owe the peer something (e.g. a key update)
            try:
                await self._fill()
            except TlsClosed:
                return b""
        return data

    async def send_all(self, data: bytes) -> None:
        self.ssl_object.write(data)
        await self._flush()

    async def _flush_quietly(self) -> None:
        try:
            await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def aclose(self) -> None:
        """Send close_notify if we can, then close the stream. Never raises for a gone peer,
        and shielded: a cancelled connection still closes, within CLOSE_TIMEOUT for a peer
        that reads no more. Over a stream that sends and closes at once (`send_nowait`,
        `close_nowait`: the in-memory pipe) it takes no scheduler pass at all."""
        try:
            self.ssl_object.unwrap()
        except ssl.SSLError:
            pass
        try:
            if self._send_nowait is not None:
                await self._flush_quietly()
            else:
                with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    await self._flush_quietly()
        finally:  # even when the flush is cut short
            close_nowait = getattr(self.stream, "close_nowait", None)
            if close_nowait is not None:
                close_nowait()
            else:
                with trio.CancelScope(shield=True):
                    await self.stream.aclose()
