"""The differential oracle: the edge's verdict against pyca/cryptography's client verifier.

DESIGN.md, hard point 7. The edge's verdict is `edge.node.verify.verify`: OpenSSL 3.0 with the
very settings of a handshake at the edge (same context builder, same depth limit, ssl_client
purpose, validation at the case's time). The independent oracle is pyca/cryptography's
webpki-style `PolicyBuilder().store(Store(anchors)).time(t).build_client_verifier()`, with the
edge's depth limit, so the two differ only where their rules differ.

They disagree by design in known families (conformance/README.md, docs/validation-differences.md).
`classify` names the family of a disagreement by looking at the CERTIFICATES: every family is a
predicate on the case, evaluated on the path the accepting verifier built (the path pyca accepted
when the edge refused, the path OpenSSL accepted when pyca refused), and only then checked for
consistency with the refusing side's error. A disagreement no predicate explains is
"unclassified": a finding, to be saved with `save_case` and looked at.

Verdicts are compared at the level "verified or not"; two refusals for different reasons agree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from edge.fuzz.chains import Case, ChainSpec
from edge.node.reasons import Reason
from edge.node.trust import DEFAULT_MAX_CHAIN_DEPTH
from edge.node.verify import verify as edge_verify

__all__ = [
    "EdgeResult",
    "PycaResult",
    "Comparison",
    "Family",
    "FAMILIES",
    "UNCLASSIFIED",
    "edge_verdict",
    "edge_anchor_order",
    "pyca_verdict",
    "compare",
    "classify",
    "families",
    "save_case",
    "load_case",
    "replay",
]

UNCLASSIFIED = "unclassified"


# --- the two verdicts -------------------------------------------------------------------------


@attrs.frozen
class EdgeResult:
    """The edge's verdict: OpenSSL's first error (code, message, depth) and its reason."""

    verified: bool
    reason: Reason
    code: int
    message: str
    depth: int
    chain: tuple[bytes, ...] = attrs.field(default=(), repr=False)  # built path, leaf first

    def to_json(self) -> dict:
        return {
            "verified": self.verified, "reason": self.reason.value, "openssl_code": self.code,
            "openssl_message": self.message, "depth": self.depth,
        }


@attrs.frozen
class PycaResult:
    """pyca/cryptography's verdict: the path it built, or the error it gave."""

    verified: bool
    error: str | None = None  # VerificationError text; other exceptions as "Type: text"
    chain: tuple[bytes, ...] = attrs.field(default=(), repr=False)  # built path, leaf first
    crashed: bool = False  # an exception other than VerificationError

    def to_json(self) -> dict:
        return {"verified": self.verified, "error": self.error, "crashed": self.crashed}


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def edge_anchor_order(anchors: Sequence[bytes]) -> tuple[bytes, ...]:
    """The anchors in the order an edge node's context loads them: a hostname's `TrustSet` holds
    them sorted by SHA-256 fingerprint, whatever the upload order. The order matters to OpenSSL
    when several anchors share a subject DN and the chain has no AKI (see `no-backtracking`)."""
    return tuple(sorted(dict.fromkeys(anchors), key=lambda der: hashlib.sha256(der).hexdigest()))


def edge_verdict(case: Case, *, max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH) -> EdgeResult:
    """What the edge decides for the case: what a handshake at an edge node whose hostname
    trusts `case.anchors` decides (anchors in the edge's own order)."""
    verdict, reason = edge_verify(
        case.leaf, case.intermediates, edge_anchor_order(case.anchors), case.at,
        max_chain_depth=max_chain_depth,
    )
    return EdgeResult(verdict.ok, reason, verdict.code, verdict.message, verdict.depth,
                      verdict.chain)


def pyca_verdict(case: Case, *, max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH) -> PycaResult:
    """What pyca/cryptography's client verifier decides, with the edge's depth limit."""
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(list(case.anchor_certificates)))
            .time(case.at)
            .max_chain_depth(max_chain_depth)
            .build_client_verifier()
        )
        verified = verifier.verify(case.leaf_certificate, list(case.intermediate_certificates))
    except VerificationError as err:
        return PycaResult(False, str(err))
    except Exception as err:  # noqa: BLE001 - a crash is a verdict too, and a finding
        return PycaResult(False, f"{type(err).__name__}: {err}", crashed=True)
    return PycaResult(True, None, tuple(_der(c) for c in verified.chain))


# --- certificate predicates -------------------------------------------------------------------


def _load(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _ext(certificate: x509.Certificate, kind):
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _key_id(certificate: x509.Certificate) -> bytes:
    """The certificate's SKI, or the RFC 5280 method-1 hash of its key where it has none."""
    ski = _ext(certificate, x509.SubjectKeyIdentifier)
    if ski is not None:
        return ski.digest
    return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _aki(certificate: x509.Certificate) -> bytes | None:
    aki = _ext(certificate, x509.AuthorityKeyIdentifier)
    return None if aki is None else aki.key_identifier


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _self_issued(certificate: x509.Certificate) -> bool:
    return certificate.subject == certificate.issuer


def _is_ca_cert(certificate: x509.Certificate) -> bool:
    bc = _ext(certificate, x509.BasicConstraints)
    return bc is not None and bc.ca


_WEBPKI_SIGNATURES = frozenset({
    SignatureAlgorithmOID.RSA_WITH_SHA256, SignatureAlgorithmOID.RSA_WITH_SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512, SignatureAlgorithmOID.RSASSA_PSS,
    SignatureAlgorithmOID.ECDSA_WITH_SHA256, SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512,
})
_WEBPKI_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


def _webpki_key(certificate: x509.Certificate) -> bool:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size >= 2048
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, _WEBPKI_CURVES)


@attrs.frozen
class _View:
    """What a family predicate looks at: the case and the path the accepting verifier built."""

    case: Case
    edge: EdgeResult
    pyca: PycaResult
    path: tuple[x509.Certificate, ...]  # leaf first, anchor last

    @property
    def leaf(self) -> x509.Certificate:
        return self.case.leaf_certificate

    @property
    def path_cas(self) -> tuple[x509.Certificate, ...]:
        return self.path[1:]

    def candidates(self) -> tuple[x509.Certificate, ...]:
        """Every certificate a verifier may pick an issuer from."""
        return (*self.case.anchor_certificates, *self.case.intermediate_certificates)

    def issued_pairs(self):
        """(certificate, its issuer) along the path, and (anchor, anchor) if self-issued."""
        pairs = list(zip(self.path, self.path[1:]))
        if self.path and _self_issued(self.path[-1]):
            pairs.append((self.path[-1], self.path[-1]))
        return pairs


# --- the families -----------------------------------------------------------------------------


@attrs.frozen
class Family:
    """A known disagreement: who refuses, what in the certificates makes it, how to spot it."""

    name: str
    stricter: str  # "edge" (the edge refuses, pyca accepts) or "pyca"
    summary: str
    predicate: Callable[[_View], bool] = attrs.field(repr=False)
    # Corroboration only, to choose among several families whose predicates hold: the edge's
    # OpenSSL codes when the edge refuses, fragments of pyca's error when pyca refuses.
    edge_codes: frozenset[int] = frozenset()
    pyca_hints: tuple[str, ...] = ()
    example: ChainSpec = ChainSpec()  # a smallest chain of the family (docs and tests use it)


def _notafter_at_t(v: _View) -> bool:
    t = math.floor(v.case.at.timestamp())
    return any(c.not_valid_after_utc.timestamp() == t for c in v.path)


def _partial_chain(v: _View) -> bool:
    return bool(v.path) and not _self_issued(v.path[-1])


def _aki_mismatch(v: _View) -> bool:
    for child, issuer in v.issued_pairs():
        aki = _aki(child)
        if aki is not None and aki != _key_id(issuer):
            return True
    return False


def _no_backtracking(v: _View) -> bool:
    """A certificate without AKI on the path whose issuer's NAME several keys carry."""
    for child, _issuer in zip(v.path, v.path[1:]):
        if _aki(child) is not None:
            continue
        keys = {_spki(c) for c in v.candidates() if c.subject == child.issuer}
        if len(keys) > 1:
            return True
    return False


def _leaf_ku_without_signature(v: _View) -> bool:
    ku = _ext(v.leaf, x509.KeyUsage)
    return ku is not None and not (ku.digital_signature or ku.key_agreement)


def _ca_any_eku(v: _View) -> bool:
    for ca in v.path_cas:
        eku = _ext(ca, x509.ExtendedKeyUsage)
        if eku is not None and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku \
                and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            return True
    return False


def _hostname_like(text: str) -> bool:
    return "." in text and " " not in text and "@" not in text


def _nc_on_cn(v: _View) -> bool:
    """DNS name constraints on the path and a hostname-like CN in a leaf without a DNS SAN."""
    if not any(_ext(ca, x509.NameConstraints) is not None for ca in v.path_cas):
        return False
    san = _ext(v.leaf, x509.SubjectAlternativeName)
    if san is not None and san.get_values_for_type(x509.DNSName):
        return False
    cns = v.leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return any(_hostname_like(str(cn.value)) for cn in cns)


def _non_webpki_algorithms(v: _View) -> bool:
    """A signature on the path, or a CA key, outside the webpki set (Ed25519, say)."""
    if any(c.signature_algorithm_oid not in _WEBPKI_SIGNATURES for c in v.path):
        return True
    return any(not _webpki_key(ca) for ca in v.path_cas)


def _leaf_without_san(v: _View) -> bool:
    return _ext(v.leaf, x509.SubjectAlternativeName) is None


def _leaf_is_ca(v: _View) -> bool:
    return _is_ca_cert(v.leaf)


def _leaf_without_aki(v: _View) -> bool:
    return _aki(v.leaf) is None


def _leaf_keycertsign(v: _View) -> bool:
    ku = _ext(v.leaf, x509.KeyUsage)
    return ku is not None and ku.key_cert_sign


def _leaf_name_constraints(v: _View) -> bool:
    return _ext(v.leaf, x509.NameConstraints) is not None


def _ca_missing_extension(v: _View) -> bool:
    return any(
        _ext(ca, x509.KeyUsage) is None or _ext(ca, x509.BasicConstraints) is None
        for ca in v.path_cas
    )


_UNKNOWN = frozenset({2, 20, 21})

FAMILIES: dict[str, Family] = {f.name: f for f in (
    # The edge (OpenSSL 3.0) refuses what pyca accepts.
    Family(
        "notafter-inclusive", "edge",
        "a certificate on the path expires exactly at the validation time",
        _notafter_at_t, frozenset({10}),
        example=ChainSpec(deviations=(("leaf.validity", "na_eq_t"),)),
    ),
    Family(
        "partial-chain", "edge",
        "the trust anchor is not self-issued (an intermediate uploaded as the CA)",
        _partial_chain, _UNKNOWN,
        example=ChainSpec(depth=2, deviations=(("chain.anchor", "intermediate"),)),
    ),
    Family(
        "aki-mismatch", "edge",
        "an AuthorityKeyIdentifier that does not match its issuer's key identifier",
        _aki_mismatch, _UNKNOWN | {22, 30, 31},
        example=ChainSpec(deviations=(("leaf.aki", "mismatch"),)),
    ),
    Family(
        "no-backtracking", "edge",
        "a certificate without AKI whose issuer name several keys carry; OpenSSL tries one",
        _no_backtracking, frozenset({7}),
        example=ChainSpec(depth=3, deviations=(("chain.send", "decoy"), ("int2.aki", "absent"))),
    ),
    Family(
        "name-constraints-cn", "edge",
        "DNS name constraints applied to a hostname-like CN of a leaf without DNS SAN",
        _nc_on_cn, frozenset({47, 48, 49, 51, 52, 53}),
        example=ChainSpec(deviations=(
            ("leaf.san", "email"), ("leaf.cn", "hostname_other"), ("root.nc", "permit_leaf"),
        )),
    ),
    Family(
        "leaf-key-usage", "edge",
        "a leaf KeyUsage without digitalSignature or keyAgreement (OpenSSL's ssl_client)",
        _leaf_ku_without_signature, frozenset({26}),
        example=ChainSpec(deviations=(("leaf.ku", "keyEncipherment"),)),
    ),
    Family(
        "ca-any-eku", "edge",
        "a CA whose EKU is anyExtendedKeyUsage without clientAuth",
        _ca_any_eku, frozenset({26}),
        example=ChainSpec(depth=2, deviations=(("int1.eku", "any"),)),
    ),
    # pyca (webpki / CA/B rules) refuses what the edge accepts.
    Family(
        "key-or-encoding-rules", "pyca",
        "a signature or CA key outside the webpki algorithms (Ed25519)",
        _non_webpki_algorithms, pyca_hints=("Forbidden",),
        example=ChainSpec(keys=("ed25519", "ec", "ec")),
    ),
    Family(
        "leaf-without-san", "pyca",
        "a client leaf without subjectAltName",
        _leaf_without_san, pyca_hints=("2.5.29.17",),
        example=ChainSpec(deviations=(("leaf.san", "absent"),)),
    ),
    Family(
        "aki-missing", "pyca",
        "a leaf without AuthorityKeyIdentifier (OpenSSL refuses it only with X509_STRICT)",
        _leaf_without_aki, pyca_hints=("2.5.29.35",),
        example=ChainSpec(deviations=(("leaf.aki", "absent"),)),
    ),
    Family(
        "ca-as-leaf", "pyca",
        "a leaf with BasicConstraints cA=TRUE",
        _leaf_is_ca, pyca_hints=("must not be asserted in an EE",),
        example=ChainSpec(deviations=(("leaf.bc", "ca_true"),)),
    ),
    Family(
        "leaf-keycertsign", "pyca",
        "a leaf KeyUsage asserting keyCertSign",
        _leaf_keycertsign, pyca_hints=("keyCertSign",),
        example=ChainSpec(deviations=(("leaf.ku", "plus_keyCertSign"),)),
    ),
    Family(
        "name-constraints-in-leaf", "pyca",
        "a leaf carrying NameConstraints",
        _leaf_name_constraints, pyca_hints=("2.5.29.30",),
        example=ChainSpec(deviations=(("leaf.nc", "present"),)),
    ),
    Family(
        "strict-only", "pyca",
        "a CA on the path without KeyUsage or BasicConstraints (OpenSSL: X509_STRICT only)",
        _ca_missing_extension, pyca_hints=("2.5.29.15", "2.5.29.19"),
        example=ChainSpec(depth=2, deviations=(("int1.ku", "absent"),)),
    ),
)}


def _view(case: Case, edge: EdgeResult, pyca: PycaResult) -> _View | None:
    """The path of the verifier that accepted, or None when they agree."""
    if edge.verified == pyca.verified:
        return None
    chain = pyca.chain if pyca.verified else edge.chain
    return _View(case, edge, pyca, tuple(_load(d) for d in chain))


def families(case: Case, edge: EdgeResult, pyca: PycaResult) -> tuple[str, ...]:
    """Every family whose predicate holds for this disagreement, in table order; () if they
    agree or if none does."""
    view = _view(case, edge, pyca)
    if view is None or pyca.crashed:
        return ()
    stricter = "pyca" if edge.verified else "edge"
    return tuple(
        f.name for f in FAMILIES.values() if f.stricter == stricter and f.predicate(view)
    )


def classify(case: Case, edge: EdgeResult, pyca: PycaResult) -> str | None:
    """None when the verdicts agree; else the family that explains the disagreement, or
    "unclassified". Among several matching families, the one the refusing side's error
    corroborates comes first."""
    if edge.verified == pyca.verified:
        return None
    found = [FAMILIES[name] for name in families(case, edge, pyca)]
    if not found:
        return UNCLASSIFIED

    def corroborated(family: Family) -> bool:
        if family.stricter == "edge":
            return edge.code in family.edge_codes
        return any(hint in (pyca.error or "") for hint in family.pyca_hints)

    return next((f.name for f in found if corroborated(f)), found[0].name)


# --- comparing and saving ---------------------------------------------------------------------


@attrs.frozen
class Comparison:
    case: Case
    edge: EdgeResult
    pyca: PycaResult
    family: str | None  # None: they agree

    @property
    def agree(self) -> bool:
        return self.family is None

    def to_json(self) -> dict:
        return {
            "validation_time": self.case.at.isoformat(),
            "spec": self.case.spec.describe(),
            "spec_json": self.case.spec.to_json(),
            "expected": None if self.case.expected is None else self.case.expected.value,
            "foreign": self.case.foreign,
            "edge": self.edge.to_json(),
            "pyca": self.pyca.to_json(),
            "family": self.family,
        }


def compare(case: Case, *, max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH) -> Comparison:
    """Both verdicts on one case, and the family of their disagreement if any."""
    edge = edge_verdict(case, max_chain_depth=max_chain_depth)
    pyca = pyca_verdict(case, max_chain_depth=max_chain_depth)
    return Comparison(case, edge, pyca, classify(case, edge, pyca))


def _pem(ders: Sequence[bytes]) -> bytes:
    return b"".join(
        _load(d).public_bytes(serialization.Encoding.PEM) for d in ders
    )


def save_case(directory: str | Path, comparison: Comparison) -> Path:
    """Write a reproducible case into `directory` (created): anchors.pem, leaf.pem,
    intermediates.pem (in send order), leaf.key (PKCS#8) and case.json (validation time, the
    generator's spec and expectation, both verdicts, the family). `replay(directory)` re-runs it;
    `openssl verify -attime`, with -purpose sslclient -untrusted intermediates.pem, too."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    case = comparison.case
    (directory / "anchors.pem").write_bytes(_pem(case.anchors))
    (directory / "leaf.pem").write_bytes(_pem([case.leaf]))
    (directory / "intermediates.pem").write_bytes(_pem(case.intermediates))
    key = directory / "leaf.key"
    key.write_bytes(case.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    key.chmod(0o600)
    record = comparison.to_json()
    record["openssl_command"] = (
        f"openssl verify -attime {math.floor(case.at.timestamp())} -purpose sslclient "
        "-verify_depth {depth} -CAfile anchors.pem -untrusted intermediates.pem leaf.pem"
    ).replace("{depth}", str(DEFAULT_MAX_CHAIN_DEPTH))
    (directory / "case.json").write_text(json.dumps(record, indent=2) + "\n")
    return directory


def _read_pems(path: Path) -> tuple[bytes, ...]:
    data = path.read_bytes()
    return tuple(_der(c) for c in x509.load_pem_x509_certificates(data)) if data.strip() else ()


def load_case(directory: str | Path) -> Case:
    """The case `save_case` wrote, byte for byte."""
    directory = Path(directory)
    record = json.loads((directory / "case.json").read_text())
    (leaf,) = _read_pems(directory / "leaf.pem")
    key = serialization.load_pem_private_key((directory / "leaf.key").read_bytes(), None)
    expected = record.get("expected")
    return Case(
        spec=ChainSpec.from_json(record["spec_json"]),
        anchors=_read_pems(directory / "anchors.pem"),
        leaf=leaf,
        leaf_key=key,
        intermediates=_read_pems(directory / "intermediates.pem"),
        at=dt.datetime.fromisoformat(record["validation_time"]),
        expected=None if expected is None else Reason(expected),
        foreign=record.get("foreign", False),
    )


def replay(directory: str | Path) -> Comparison:
    """Both oracles again on a saved case."""
    return compare(load_case(directory))
