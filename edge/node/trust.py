"""TLS contexts per distinct trust set, built once and shared by every hostname that uses it.

An `SSLContext` with a CA and the edge's certificate costs about 0.5-0.6 ms to build (the
certificate decoded once, `openssl.ServerCredential`; 1.7-3.2 ms through `load_cert_chain`,
measured here); switching to a pre-built one in the SNI callback costs about 0.25 us. So
contexts are cached by trust-set key (the CAs' fingerprints), built when a snapshot first needs
them and dropped when no snapshot uses them any more. Connections in flight keep their context
alive by reference.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence

from edge.control.snapshot import EdgeConfig, TrustSet
from edge.pki import openssl

DEFAULT_MAX_CHAIN_DEPTH = 4  # intermediates allowed between the leaf and its CA


def server_context(
    configure_server_cert: Callable[[ssl.SSLContext], None],
    *,
    trust_ders: Sequence[bytes] = (),
    num_tickets: int = 0,
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
) -> ssl.SSLContext:
    """A server context with the edge's certificate and settings; with `trust_ders`, it asks for
    a client certificate, verifies it against them and never aborts on the verdict.

    No session cache ever, and no tickets by default: OpenSSL does not verify a resumed session
    again. With `num_tickets` > 0 the node reuses the verdict of the certificate's full
    handshake under the same trust set, and treats any other resumed session as unverified. The
    standalone `edge.node.verify` builds its contexts here too, so both verify alike.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    configure_server_cert(context)
    context.num_tickets = num_tickets
    openssl.disable_session_cache(context)  # never resumption by session id
    if num_tickets == 0:
        context.options |= ssl.OP_NO_TICKET
    openssl.set_verify_depth(context, max_chain_depth)
    if trust_ders:
        context.load_verify_locations(cadata=b"".join(trust_ders))
        context.verify_mode = ssl.CERT_OPTIONAL
        openssl.install_verify_callback(context)
    return context


class ContextCache:
    """Server contexts: one without client auth, one per trust set in the current snapshot."""

    def __init__(
        self,
        configure_server_cert: Callable[[ssl.SSLContext], None],
        *,
        num_tickets: int = 0,
        max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
    ) -> None:
        self._configure = configure_server_cert
        self._num_tickets = num_tickets
        self._max_chain_depth = max_chain_depth
        self.plain = self._new_context()
        self._by_key: dict[tuple[str, ...], ssl.SSLContext] = {}
        self.built = 0  # contexts built over the cache's life, for tests and benches

    def _new_context(self, trust_ders: Sequence[bytes] = ()) -> ssl.SSLContext:
        return server_context(
            self._configure,
            trust_ders=trust_ders,
            num_tickets=self._num_tickets,
            max_chain_depth=self._max_chain_depth,
        )

    def _build(self, trust: TrustSet) -> ssl.SSLContext:
        self.built += 1
        return self._new_context(trust.ders)

    def update(self, snapshot: EdgeConfig) -> None:
        """Build what the snapshot needs and forget what it no longer uses."""
        self._by_key = {
            key: self._by_key.get(key) or self._build(trust)
            for key, trust in snapshot.trust_sets.items()
        }

    def for_trust(self, trust: TrustSet) -> ssl.SSLContext:
        context = self._by_key.get(trust.key)
        if context is None:  # a snapshot newer than the last update(): build it now
            context = self._by_key[trust.key] = self._build(trust)
        return context

    def __len__(self) -> int:
        return len(self._by_key)
