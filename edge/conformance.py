"""x509-limbo conformance of the edge's client-certificate verification.

Runs x509-limbo test cases (any limbo-format JSON, ``{"testcases": [...]}``) through the edge's
own verification and produces limbo-style results (``{"results": [{"id", "actual_result",
"context"}]}``, ``actual_result`` one of SUCCESS, FAILURE, SKIPPED, HANG).

Profiles:

* ``edge``: exactly the edge's OpenSSL settings. The context comes from
  `edge.node.trust.server_context` (the edge's flags, verify depth and trust loading) and the chain
  goes through `edge.pki.openssl.verify`, as `edge.node.verify` does; a case with
  ``extended_key_usage == ["clientAuth"]`` and no CRLs goes through `edge.node.verify.verify`
  itself. What a case asks for on top is honoured as follows:

  - ``extended_key_usage``: ``["clientAuth"]`` is the ssl_client purpose a handshake at the edge
    applies; ``[]`` means no purpose check (limbo's transposed SERVER leaves carry serverAuth), done
    by setting X509_PURPOSE_ANY on the verifying context's parameters, which
    `openssl.verify` copies over the ssl_client default (``X509_VERIFY_PARAM_set1``). Anything else
    is SKIPPED.
  - ``validation_time``: null means no validity-period check (X509_V_FLAG_NO_CHECK_TIME).
  - ``max_chain_depth``: the verify depth (default: the edge's, 4).
  - ``crls``: added to the context's store with X509_V_FLAG_CRL_CHECK | CRL_CHECK_ALL, i.e.
    OpenSSL's own revocation checking of the chain, as x509-limbo's OpenSSL harness does. (The edge
    itself takes no CRLs for uploaded CAs.)
  - ``expected_peer_names`` (CLIENT cases): on success, each name must be in the leaf's
    subjectAltName. ``expected_peer_name`` (a server-name check), ``key_usage`` and
    ``signature_algorithms`` constraints and unknown ``features`` are SKIPPED, with the reason.

* ``strict``: the edge's verdict AND pyca/cryptography's
  ``PolicyBuilder().store(...).time(...).build_client_verifier()`` (EKU validators removed when the
  case asks for no EKU) AND a few RFC 5280 / CA/B checks of our own on the chain OpenSSL built
  (`STRICT_CHECKS`). By construction it never accepts what the edge rejects.

Every case runs in a worker process under a per-case time limit: a case that does not finish in
time is reported as HANG and the worker is replaced, so a pathological case never stalls the run.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import attrs
from cryptography.exceptions import UnsupportedAlgorithm

from edge.node import verify as node_verify
from edge.node.verify import no_server_certificate
from edge.node.trust import DEFAULT_MAX_CHAIN_DEPTH, server_context
from edge.pki import openssl

__all__ = [
    "PROFILES",
    "DEFAULT_TIMEOUT",
    "KNOWN_FEATURES",
    "STRICT_CHECKS",
    "Outcome",
    "CaseResult",
    "Report",
    "load_cases",
    "skip_reason",
    "evaluate_case",
    "run",
    "main",
]

PROFILES = ("edge", "strict")
DEFAULT_TIMEOUT = 5.0
"""Seconds one case may take (both layers in `strict`) before it is reported as HANG. The slowest
case of the client-relevant file takes about 30 ms."""
STARTUP_TIMEOUT = 60.0
"""Seconds a worker process may take to start (imports OpenSSL bindings and cryptography)."""

SUCCESS, FAILURE, SKIPPED, HANG = "SUCCESS", "FAILURE", "SKIPPED", "HANG"
ACTUAL_RESULTS = (SUCCESS, FAILURE, SKIPPED, HANG)

KNOWN_FEATURES = frozenset({
    # tags on the verifier's behaviour: the verdict is what we measure
    "has-policy-constraints", "has-cert-policies", "no-cert-policies",
    "pedantic-public-suffix-wildcard", "name-constraint-dn", "pedantic-webpki-subscriber-key",
    "pedantic-webpki-eku", "pedantic-serial-number", "pedantic-rfc5280",
    "rfc5280-incompatible-with-webpki", "denial-of-service",
    # tags on inputs this harness honours
    "max-chain-depth", "has-crl",
})
"""x509-limbo's feature tags; a case with any other tag is SKIPPED (limbo: "consumers that don't
understand a given feature should skip tests that are marked with it")."""

PEER_NAME_KINDS = ("RFC822", "DNS", "IP")


def _edge_context(
    anchors: Sequence[bytes], depth: int, *, any_purpose: bool, crls: Sequence[bytes]
) -> ssl.SSLContext:
    """The context `edge.node.verify` would build, plus what the case asks for."""
    context = server_context(no_server_certificate, trust_ders=anchors, max_chain_depth=depth)
    if any_purpose:
        openssl.set_any_purpose(context)
    if crls:
        try:
            openssl.add_crls(context, crls)
        except ValueError:
            raise _Unreadable("OpenSSL cannot parse a CRL of the case") from None
    return context


# --------------------------------------------------------------------------- #
# Cases                                                                       #
# --------------------------------------------------------------------------- #


class _Unreadable(Exception):
    """Input the harness cannot decode (the case then fails or is skipped, never crashes)."""


def _pem_der(pem: str) -> bytes:
    """DER of one PEM block, without parsing it (parsing is the verifier's business)."""
    body = re.search(r"-----BEGIN [^-]+-----(.*?)-----END [^-]+-----", pem, re.S)
    if body is None:
        raise _Unreadable("not PEM")
    try:
        return base64.b64decode("".join(body.group(1).split()), validate=True)
    except binascii.Error as err:
        raise _Unreadable(f"bad base64 in PEM: {err}") from err


def _when(case: Mapping[str, Any]) -> dt.datetime | None:
    value = case.get("validation_time")
    if value is None:
        return None
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)  # limbo times are UTC


def _ekus(case: Mapping[str, Any]) -> list[str]:
    return list(case.get("extended_key_usage") or [])


def load_cases(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The test cases of a limbo-format file; ValueError if it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON: {err}") from err
    cases = data.get("testcases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise ValueError(f"{path}: not an x509-limbo file (no \"testcases\" list)")
    seen: set[str] = set()
    for index, case in enumerate(cases):
        if not isinstance(case, dict) or not isinstance(case.get("id"), str):
            raise ValueError(f"{path}: test case #{index} has no id")
        missing = [k for k in ("expected_result", "peer_certificate", "trusted_certs") if k not in case]
        if missing:
            raise ValueError(f"{path}: {case['id']}: missing {', '.join(missing)}")
        if case["expected_result"] not in (SUCCESS, FAILURE):
            raise ValueError(f"{path}: {case['id']}: expected_result {case['expected_result']!r}")
        if case["id"] in seen:
            raise ValueError(f"{path}: duplicate test case id {case['id']}")
        seen.add(case["id"])
    return cases


def skip_reason(case: Mapping[str, Any]) -> str | None:
    """Why this harness does not run the case, or None: it runs."""
    unknown = sorted(set(case.get("features") or ()) - KNOWN_FEATURES)
    if unknown:
        return f"feature not implemented: {', '.join(unknown)}"
    if case.get("validation_kind", "CLIENT") not in ("CLIENT", "SERVER"):
        return f"validation_kind {case.get('validation_kind')!r} not supported"
    if case.get("signature_algorithms"):
        return "signature_algorithms constraint not implemented"
    if case.get("key_usage"):
        return ("key_usage constraint not implemented (OpenSSL has no per-verification key-usage "
                "constraint; as x509-limbo's OpenSSL harness)")
    ekus = _ekus(case)
    if ekus not in ([], ["clientAuth"]):
        return (f"extended_key_usage {ekus}: the edge checks client certificates with the "
                "ssl_client purpose, or (for []) with none")
    if case.get("expected_peer_name") is not None:
        return "expected_peer_name is a server-name check; the edge verifies client certificates"
    kinds = {name.get("kind") for name in case.get("expected_peer_names") or ()}
    if kinds - set(PEER_NAME_KINDS):
        return f"expected_peer_names of kind {sorted(map(str, kinds - set(PEER_NAME_KINDS)))}"
    return None


# --------------------------------------------------------------------------- #
# Evaluation (in the worker)                                                  #
# --------------------------------------------------------------------------- #


class Outcome(NamedTuple):
    """One verdict: ``actual`` (SUCCESS/FAILURE/SKIPPED), its context, and in `strict` the edge
    layer's own verdict (so a report can show what strict rejects that the edge accepts)."""

    actual: str
    context: str | None = None
    edge_actual: str | None = None


def _edge_verdict(case: Mapping[str, Any]) -> tuple[bool, str | None, tuple[bytes, ...]]:
    """(accepted, reason if not, chain OpenSSL built)."""
    at = _when(case)
    try:
        leaf = _pem_der(case["peer_certificate"])
        sent = [_pem_der(p) for p in case.get("untrusted_intermediates") or ()]
        anchors = [_pem_der(p) for p in case["trusted_certs"]]
        crls = [_pem_der(p) for p in case.get("crls") or ()]
    except _Unreadable as err:
        return False, f"unreadable input: {err}", ()
    depth = case.get("max_chain_depth")
    depth = DEFAULT_MAX_CHAIN_DEPTH if depth is None else depth
    try:
        if _ekus(case) == ["clientAuth"] and not crls:
            verdict, _reason = node_verify.verify(leaf, sent, anchors, at, max_chain_depth=depth)
        else:
            context = _edge_context(anchors, depth, any_purpose=not _ekus(case), crls=crls)
            verdict = openssl.verify(leaf, sent, context, at)
    except (ValueError, ssl.SSLError, _Unreadable) as err:
        # a certificate OpenSSL cannot parse: the edge could not take it (upload or handshake)
        return False, f"OpenSSL cannot load the case: {err}", ()
    if not verdict.ok:
        return False, f"X509 error {verdict.code} at depth {verdict.depth}: {verdict.message}", verdict.chain
    missing = _missing_peer_names(case, leaf)
    if missing:
        return False, missing, verdict.chain
    return True, None, verdict.chain


def _missing_peer_names(case: Mapping[str, Any], leaf_der: bytes) -> str | None:
    wanted = case.get("expected_peer_names") or ()
    if not wanted:
        return None
    from cryptography import x509

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            san = x509.load_der_x509_certificate(leaf_der).extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "expected peer names, but the leaf has no subjectAltName"
    except ValueError as err:
        return f"cannot read the leaf's subjectAltName: {err}"
    emails = {_email_key(v) for v in san.get_values_for_type(x509.RFC822Name)}
    dns = {v.lower() for v in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    for name in wanted:
        kind, value = name["kind"], name["value"]
        found = (
            _email_key(value) in emails if kind == "RFC822"
            else value.lower() in dns if kind == "DNS"
            else ipaddress.ip_address(value) in ips
        )
        if not found:
            return f"expected peer name {kind}:{value} is not in the leaf's subjectAltName"
    return None


def _email_key(value: str) -> str:
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


# --- strict: pyca/cryptography ---------------------------------------------------------------


def _load_certs(pems: Iterable[str]) -> list[Any]:
    from cryptography import x509

    return [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def _pyca_rejects(case: Mapping[str, Any], chain: Sequence[bytes]) -> str | None:
    """pyca/cryptography's client verifier: None if it accepts, else why not."""
    from cryptography import x509
    from cryptography.x509 import verification as v

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # negative serials etc.: loading still works
            leaf = _load_certs([case["peer_certificate"]])[0]
            sent = _load_certs(case.get("untrusted_intermediates") or ())
            anchors = _load_certs(case["trusted_certs"])
            built = [x509.load_der_x509_certificate(d) for d in chain]
    except ValueError as err:
        return f"cannot parse a certificate: {err}"
    at = _when(case)
    if at is None:
        # pyca always checks validity; the edge did not. Take the first instant at which the
        # whole chain the edge built is valid (its latest notBefore).
        at = max(c.not_valid_before_utc for c in built)
    try:
        builder = v.PolicyBuilder().store(v.Store(anchors)).time(at)
        if case.get("max_chain_depth") is not None:
            builder = builder.max_chain_depth(case["max_chain_depth"])
        if not _ekus(case):  # no EKU constraint: drop the EKU validators, keep the rest
            builder = builder.extension_policies(
                ca_policy=v.ExtensionPolicy.webpki_defaults_ca().may_be_present(
                    x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None),
                ee_policy=v.ExtensionPolicy.webpki_defaults_ee().may_be_present(
                    x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None),
            )
        builder.build_client_verifier().verify(leaf, sent)
    except (v.VerificationError, ValueError, TypeError, UnsupportedAlgorithm) as err:
        return _clip(str(err))
    return None


def _clip(text: str, limit: int = 240) -> str:
    """pyca's messages can embed whole keys; keep the first line, within `limit` characters."""
    text = text.strip().splitlines()[0] if text.strip() else text
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- strict: our own checks on the chain OpenSSL built ----------------------------------------

_LDH_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _check_serial(chain, crls):
    """RFC 5280 4.1.2.2: serial numbers MUST be positive and at most 20 octets."""
    for depth, cert in enumerate(chain):
        n = cert.serial_number
        if n <= 0 or (n.bit_length() + 8) // 8 > 20:
            return f"depth {depth}: serial number {n} not positive or longer than 20 octets"
    return None


def _check_ca_ski(chain, crls):
    """RFC 5280 4.2.1.2: CA certificates MUST carry a subjectKeyIdentifier."""
    from cryptography import x509

    for depth, cert in enumerate(chain):
        if _is_ca(cert) and not _has(cert, x509.SubjectKeyIdentifier):
            return f"depth {depth}: CA certificate without subjectKeyIdentifier"
    return None


def _check_aki(chain, crls):
    """RFC 5280 4.2.1.1: every certificate but a self-signed one MUST carry an
    authorityKeyIdentifier with a keyIdentifier."""
    from cryptography import x509

    for depth, cert in enumerate(chain):
        if cert.issuer == cert.subject and _self_signed(cert):
            continue
        try:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        except x509.ExtensionNotFound:
            return f"depth {depth}: no authorityKeyIdentifier"
        if aki.key_identifier is None:
            return f"depth {depth}: authorityKeyIdentifier without keyIdentifier"
    return None


def _check_keys(chain, crls):
    """CA/B BR 6.1.5 / 7.1.3.1, for every certificate: no DSA; RSA at least 2048 bits with a
    modulus a multiple of 8 bits; ECDSA only on P-256, P-384, P-521 (EdDSA allowed: RFC 8410)."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    for depth, cert in enumerate(chain):
        try:
            key = cert.public_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as err:
            return f"depth {depth}: unusable public key: {err}"
        if isinstance(key, dsa.DSAPublicKey):
            return f"depth {depth}: DSA key"
        if isinstance(key, rsa.RSAPublicKey) and (key.key_size < 2048 or key.key_size % 8):
            return f"depth {depth}: RSA modulus of {key.key_size} bits"
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in (
            "secp256r1", "secp384r1", "secp521r1"
        ):
            return f"depth {depth}: ECDSA key on {key.curve.name}"
    return None


def _check_dns_names(chain, crls):
    """RFC 5280 4.2.1.6: a dNSName is in the preferred name syntax (letters, digits, hyphens);
    a leading "*" label is allowed. Checked on the leaf."""
    from cryptography import x509

    try:
        san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for name in san.get_values_for_type(x509.DNSName):
        labels = name.split(".")
        if labels and labels[0] == "*":
            labels = labels[1:]
        if not labels or not all(_LDH_LABEL.match(label) for label in labels):
            return f"leaf dNSName {name!r} is not in the preferred name syntax"
    return None


def _check_policy_constraints(chain, crls):
    """RFC 5280 4.2.1.11: policyConstraints MUST be critical."""
    from cryptography import x509

    for depth, cert in enumerate(chain):
        try:
            ext = cert.extensions.get_extension_for_class(x509.PolicyConstraints)
        except x509.ExtensionNotFound:
            continue
        if not ext.critical:
            return f"depth {depth}: non-critical policyConstraints"
    return None


def _check_crl_number(chain, crls):
    """RFC 5280 5.2.3: a CRL MUST carry a cRLNumber (CRLs issued by a CA of the chain)."""
    from cryptography import x509

    subjects = {cert.subject for cert in chain}
    for crl in crls:
        if crl.issuer in subjects and not _has(crl, x509.CRLNumber):
            return "a CRL of the chain has no cRLNumber"
    return None


def _is_ca(cert) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _has(obj, kind) -> bool:
    from cryptography import x509

    try:
        obj.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return False
    return True


def _self_signed(cert) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # noqa: BLE001 - any failure means "not provably self-signed"
        return False
    return True


STRICT_CHECKS: dict[str, Callable[..., str | None]] = {
    "serial-number": _check_serial,
    "ca-ski": _check_ca_ski,
    "aki": _check_aki,
    "key-strength": _check_keys,
    "dns-name-syntax": _check_dns_names,
    "policy-constraints-critical": _check_policy_constraints,
    "crl-number": _check_crl_number,
}
"""Our own checks in `strict`, by name, applied to the chain OpenSSL built (leaf first, anchor
last): each returns None or why the chain fails it."""


def _own_checks_reject(case: Mapping[str, Any], chain: Sequence[bytes]) -> str | None:
    from cryptography import x509

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            certs = [x509.load_der_x509_certificate(d) for d in chain]
            crls = [x509.load_pem_x509_crl(p.encode()) for p in case.get("crls") or ()]
            for name, check in STRICT_CHECKS.items():
                why = check(certs, crls)
                if why:
                    return f"check {name}: {why}"
    except ValueError as err:
        return f"cannot parse the chain: {err}"
    return None


def evaluate_case(case: Mapping[str, Any], profile: str = "edge") -> Outcome:
    """One case through one profile (no time limit: `run` adds that)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    reason = skip_reason(case)
    if reason:
        return Outcome(SKIPPED, reason)
    accepted, why, chain = _edge_verdict(case)
    edge = SUCCESS if accepted else FAILURE
    if profile == "edge":
        return Outcome(edge, why)
    if not accepted:
        return Outcome(FAILURE, f"edge: {why}", edge)
    why = _pyca_rejects(case, chain)
    if why:
        return Outcome(FAILURE, f"pyca: {why}", edge)
    why = _own_checks_reject(case, chain)
    if why:
        return Outcome(FAILURE, why, edge)
    return Outcome(SUCCESS, None, edge)


# --------------------------------------------------------------------------- #
# Worker process with a per-case time limit                                   #
# --------------------------------------------------------------------------- #

Evaluate = Callable[[Mapping[str, Any], str], Outcome]

_CHILD_CODE = "import sys; from edge.conformance import _child_main; _child_main(*map(int, sys.argv[1:]))"


def _child_main(read_fd: int, write_fd: int) -> None:
    """Worker process: the parent's sys.path, then (evaluate, profile), then cases until None;
    for each case an outcome or the error goes back."""
    conn_in, conn_out = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    sys.path[:] = conn_in.recv()  # before unpickling `evaluate`, which may live on it
    evaluate, profile = conn_in.recv()
    conn_out.send("ready")
    while (case := conn_in.recv()) is not None:
        try:
            conn_out.send(("ok", tuple(evaluate(case, profile))))
        except Exception:  # noqa: BLE001 - reported to the parent, which raises it
            conn_out.send(("error", traceback.format_exc()))


class _WorkerDied(Exception):
    pass


class _Worker:
    """A fresh interpreter evaluating cases one at a time, killed and replaced when a case
    overruns. A plain subprocess rather than multiprocessing: nothing is inherited from a possibly
    multi-threaded parent, and the parent's __main__ is never re-imported."""

    def __init__(self, evaluate: Evaluate, profile: str) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.to_child = Connection(to_child_w, readable=False)
        self.from_child = Connection(from_child_r, writable=False)
        try:
            self.to_child.send(list(sys.path))
            self.to_child.send((evaluate, profile))
            ready = self.from_child.poll(STARTUP_TIMEOUT) and self.from_child.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise RuntimeError(f"conformance worker did not start (exit status {self.proc.returncode})")

    def ask(self, case: Mapping[str, Any], timeout: float) -> tuple[str, Any] | None:
        """The worker's answer, or None when it gave none within `timeout` seconds."""
        try:
            self.to_child.send(case)
            if not self.from_child.poll(timeout):
                return None
            return self.from_child.recv()
        except (EOFError, OSError) as err:
            status = self.proc.wait(5)
            raise _WorkerDied(f"worker died (exit status {status})") from err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.to_child.close()
        self.from_child.close()

    def close(self) -> None:
        try:
            self.to_child.send(None)
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


# --------------------------------------------------------------------------- #
# Results                                                                     #
# --------------------------------------------------------------------------- #


@attrs.frozen
class CaseResult:
    id: str
    expected: str
    actual: str
    context: str | None
    validation_kind: str
    seconds: float
    edge_actual: str | None = None  # strict: the edge layer's verdict

    @property
    def namespace(self) -> str:
        return self.id.split("::", 1)[0]

    @property
    def ran(self) -> bool:
        return self.actual != SKIPPED

    @property
    def passed(self) -> bool:
        return self.actual == self.expected

    @property
    def false_accept(self) -> bool:
        return self.expected == FAILURE and self.actual == SUCCESS

    def limbo(self) -> dict[str, Any]:
        return {"id": self.id, "actual_result": self.actual, "context": self.context}


@attrs.frozen
class Report:
    path: str
    profile: str
    timeout: float
    results: tuple[CaseResult, ...]
    seconds: float

    def score(self, kind: str | None = None) -> tuple[int, int]:
        """(passed, ran) over the cases run (not SKIPPED), optionally of one validation_kind."""
        ran = [r for r in self.results if r.ran and (kind is None or r.validation_kind == kind)]
        return sum(r.passed for r in ran), len(ran)

    def by_id(self) -> dict[str, CaseResult]:
        return {r.id: r for r in self.results}

    @property
    def skipped(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if not r.ran)

    @property
    def hangs(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if r.actual == HANG)

    @property
    def false_accepts(self) -> tuple[CaseResult, ...]:
        """Expected FAILURE, got SUCCESS: chains this verifier wrongly accepts."""
        return tuple(r for r in self.results if r.false_accept)

    @property
    def false_rejects(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if r.expected == SUCCESS and r.ran and not r.passed)

    @property
    def stricter_than_edge(self) -> tuple[CaseResult, ...]:
        """`strict` only: cases the edge layer accepted and strict rejected."""
        return tuple(r for r in self.results if r.edge_actual == SUCCESS and r.actual == FAILURE)

    def by_namespace(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for r in self.results:
            row = table.setdefault(r.namespace, {"pass": 0, "fail": 0, "skipped": 0, "hang": 0})
            if not r.ran:
                row["skipped"] += 1
            elif r.passed:
                row["pass"] += 1
            elif r.actual == HANG:
                row["hang"] += 1  # runs and fails, shown apart
            else:
                row["fail"] += 1
        return table

    def to_limbo(self) -> dict[str, Any]:
        """limbo-result form (schema version 1)."""
        return {"version": 1, "harness": harness_name(self.profile),
                "results": [r.limbo() for r in self.results]}


def harness_name(profile: str) -> str:
    name = f"edge-{profile} ({ssl.OPENSSL_VERSION}"
    if profile == "strict":
        import cryptography

        name += f", pyca/cryptography {cryptography.__version__}"
    return name + ")"


def run(
    path: str | os.PathLike[str],
    *,
    profile: str = "edge",
    timeout: float = DEFAULT_TIMEOUT,
    evaluate: Evaluate | None = None,
) -> Report:
    """Run every case of the limbo-format file at `path` through `profile`.

    Each case runs in a worker process; one that takes longer than `timeout` seconds is reported
    as HANG (its worker is killed and replaced). `evaluate` replaces `evaluate_case` (same
    signature; it must be picklable, i.e. a module-level function) for experiments and tests.
    Raises ValueError for a file that is not limbo-format, RuntimeError if evaluating a case
    raised (a harness bug, with the worker's traceback).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    if timeout <= 0:
        raise ValueError(f"timeout must be above 0, got {timeout}")
    if profile == "strict":
        from cryptography.x509 import verification

        if not hasattr(verification.PolicyBuilder, "extension_policies"):
            raise ValueError("profile strict needs cryptography >= 45 (PolicyBuilder.extension_policies)")
    cases = load_cases(path)
    evaluate = evaluate or evaluate_case
    started = time.perf_counter()
    results: list[CaseResult] = []
    worker: _Worker | None = None
    try:
        for case in cases:
            kind = case.get("validation_kind", "CLIENT")
            reason = skip_reason(case)
            if reason:  # no need for a process to say so
                results.append(CaseResult(case["id"], case["expected_result"], SKIPPED, reason, kind, 0.0))
                continue
            if worker is None:
                worker = _Worker(evaluate, profile)
            t0 = time.perf_counter()
            try:
                answer = worker.ask(case, timeout)
            except _WorkerDied as err:  # the verifier crashed the process: nothing was accepted
                worker.kill()
                worker = None
                answer = ("ok", (FAILURE, f"verifier crashed: {err}", None))
            seconds = time.perf_counter() - t0
            if answer is None:
                worker.kill()
                worker = None
                outcome = Outcome(HANG, f"no verdict within {timeout:g} s (worker killed)")
            elif answer[0] == "error":
                raise RuntimeError(f"{case['id']}: evaluating the case failed:\n{answer[1]}")
            else:
                outcome = Outcome(*answer[1])
            if outcome.actual not in ACTUAL_RESULTS:
                raise RuntimeError(f"{case['id']}: actual_result {outcome.actual!r}")
            results.append(CaseResult(case["id"], case["expected_result"], outcome.actual,
                                      outcome.context, kind, seconds, outcome.edge_actual))
    finally:
        if worker is not None:
            worker.close()
    return Report(str(path), profile, timeout, tuple(results), time.perf_counter() - started)


# --------------------------------------------------------------------------- #
# Console                                                                     #
# --------------------------------------------------------------------------- #


def _percent(passed: int, ran: int) -> str:
    return f"{passed}/{ran}" + (f" ({100 * passed / ran:.1f} %)" if ran else "")


def render(report: Report, console: Any) -> None:
    from rich.table import Table

    console.print(f"x509-limbo cases from {report.path}", markup=False, highlight=False)
    table = Table(title=f"profile {report.profile}")
    for column in ("namespace", "pass", "fail", "skipped", "hang"):
        table.add_column(column, justify="left" if column == "namespace" else "right")
    totals = collections.Counter[str]()
    for namespace, row in sorted(report.by_namespace().items()):
        table.add_row(namespace, *(str(row[k]) for k in ("pass", "fail", "skipped", "hang")))
        totals.update(row)
    table.add_row("[bold]all[/bold]", *(f"[bold]{totals[k]}[/bold]"
                                        for k in ("pass", "fail", "skipped", "hang")))
    console.print(table)
    client = report.score("CLIENT")
    console.print(
        f"pass {_percent(*report.score())} over the cases run; CLIENT cases {_percent(*client)}; "
        f"{len(report.skipped)} skipped, {len(report.hangs)} hang; {report.seconds:.1f} s "
        f"(time limit {report.timeout:g} s per case)"
    )
    skipped = collections.Counter(r.context for r in report.skipped)
    for reason, count in skipped.most_common():
        console.print(f"  skipped {count}: {reason}", markup=False, highlight=False)
    accepts = report.false_accepts
    console.print(f"[bold]false accepts[/bold] (expected FAILURE, got SUCCESS): {len(accepts)}")
    for r in accepts:
        console.print(f"  {r.id}", markup=False, highlight=False)
    if report.profile == "strict":
        stricter = report.stricter_than_edge
        console.print(f"[bold]rejected by strict, accepted by the edge[/bold]: {len(stricter)} "
                      f"({sum(r.passed for r in stricter)} of them rightly)")
        for r in stricter:
            mark = "ok   " if r.passed else "WRONG"
            console.print(f"  {mark} {r.id}: {r.context}", markup=False, highlight=False)
    for r in report.hangs:
        console.print(f"HANG {r.id}: {r.context}", markup=False, highlight=False)


def main(
    path: str | os.PathLike[str],
    *,
    profile: str = "edge",
    json_path: str | os.PathLike[str] | None = None,
    console: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """`edge conformance FILE [--profile edge|strict] [--json PATH]`: 0 when it ran, 2 when the
    file or an option is invalid."""
    if console is None:
        from rich.console import Console

        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    try:
        report = run(path, profile=profile, timeout=timeout)
    except (OSError, ValueError) as err:
        print(f"edge conformance: {err}", file=sys.stderr)
        return 2
    render(report, console)
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report.to_limbo(), indent=2) + "\n", encoding="utf-8")
    return 0
