"""Certificate chains described by a small, readable spec, built deterministically and cached.

The fuzzing strategies (`edge.fuzz.strategies`) draw a `ChainSpec`; `build_case` turns it into a
`Case`: the trust anchors, the leaf and its key, the intermediates in send order and the
validation time, all DER. A spec is a chain of `depth` CA certificates above the leaf (a root and
`depth - 1` intermediates) plus a short list of *deviations* from a chain that every verifier
accepts: `("leaf.validity", "na_eq_t")`, `("int1.bc", "absent")`, `("chain.send", "reversed")`.
No deviation means a valid chain. Roles are `root`, `int1` (signed by the root) ... `int<depth-1>`
(the leaf's issuer), `leaf` and `chain` (structure: issuer, presentation, anchors, leaf kind).

Keys come from a `KeyPool` by fixed index per role, so a spec always yields the same keys in one
process; serial numbers derive from the certificate's own description; built certificates are
cached by that description. Two cases that share a root or an intermediate therefore share the
certificate object, and a case costs little more than signing its leaf.

`Case.expected` is the generator's own model of the EDGE's normalised reason (OpenSSL 3.0 as the
edge configures it), known for a valid chain and for every single deviation (tested exhaustively);
None for two or more deviations, where it does not know. `Case.foreign` is True when the
chain was not issued under any anchor's key (another tenant's CA, whatever its name; a signer with
the issuer's name and another key; a self-signed leaf): such a chain must never verify.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Mapping

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.node.reasons import Reason
from edge.node.trust import DEFAULT_MAX_CHAIN_DEPTH
from edge.pki.issuer import KEY_TYPES, Credential, KeyPool, KeyType, PrivateKey

UTC = dt.timezone.utc
DAY = 86400

DEFAULT_AT = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
"""The validation time of every generated case unless a strategy is given another."""

MAX_DEPTH = 5  # CA certificates above the leaf: a root and up to 4 intermediates (edge limit: 4)

# --- the knobs --------------------------------------------------------------------------------
# For each knob, the values a deviation may take; the default (valid) value is not listed here.
# Order matters for shrinking: Hypothesis shrinks toward the first value of each list.

VALIDITY = (
    "expired", "not_yet_valid", "na_eq_t", "nb_eq_t",
    "na_minus_1s", "na_plus_1s", "nb_minus_1s", "nb_plus_1s",
)
LEAF_KNOBS: dict[str, tuple[str, ...]] = {
    "validity": VALIDITY,
    "san": ("absent", "email", "dns_other"),
    "eku": ("absent", "serverAuth", "any", "client_and_server"),
    "ku": ("absent", "keyEncipherment", "plus_keyCertSign"),
    "bc": ("absent", "ca_true"),
    "aki": ("absent", "mismatch"),
    "ski": ("absent",),
    "nc": ("present",),
    "cn": ("hostname", "hostname_other"),
}
CA_KNOBS: dict[str, tuple[str, ...]] = {
    "validity": VALIDITY,
    "bc": ("absent", "ca_false", "pathlen_0", "pathlen_1"),
    "ku": ("absent", "no_keyCertSign", "plus_digitalSignature"),
    "eku": ("clientAuth", "serverAuth", "any"),
    "aki": ("absent", "mismatch"),
    "ski": ("absent",),
    "nc": ("permit_leaf", "permit_other", "exclude_leaf", "exclude_other"),
}
CHAIN_KNOBS: dict[str, tuple[str, ...]] = {
    # whose key signed the chain: another tenant's CA (another name, or the very same names),
    # or a signer with the leaf issuer's name and another key
    "issuer": ("other_tenant_same_dn", "other_tenant", "impostor"),
    # what the client sends after its leaf (default: every intermediate, nearest first)
    "send": (
        "none", "missing_issuer", "missing_top", "duplicated", "reversed", "with_root",
        "extra_unrelated", "decoy",
    ),
    # what the hostname trusts (default: the tenant's root)
    "anchor": ("intermediate", "plus_other_same_dn", "plus_other_first"),
    "leaf": ("self_signed",),
}

# Deviations only meaningful with intermediates (depth >= 2) or with 2 of them (depth >= 3).
_NEEDS_DEPTH = {
    ("chain.send", "missing_issuer"): 2,
    ("chain.send", "missing_top"): 3,
    ("chain.send", "duplicated"): 2,
    ("chain.send", "reversed"): 3,
    ("chain.send", "none"): 2,
    ("chain.anchor", "intermediate"): 2,
}

DEFAULT_KEYS: tuple[KeyType, KeyType, KeyType] = ("ec", "ec", "ec")


def roles(depth: int) -> tuple[str, ...]:
    """Every certificate role of a chain of `depth` CAs: root first, leaf last."""
    return ("root", *(f"int{i}" for i in range(1, depth)), "leaf")


def knob_values(target: str) -> tuple[str, ...]:
    """The deviation values of `role.knob` (or `chain.knob`)."""
    role, _, knob = target.partition(".")
    table = CHAIN_KNOBS if role == "chain" else LEAF_KNOBS if role == "leaf" else CA_KNOBS
    return table[knob]


def targets(depth: int) -> tuple[str, ...]:
    """Every `role.knob` a spec of this depth may deviate on, chain structure first."""
    found = [f"chain.{k}" for k in CHAIN_KNOBS]
    found += [f"leaf.{k}" for k in LEAF_KNOBS]
    for role in roles(depth)[-2::-1]:  # the leaf's issuer first, the root last
        found += [f"{role}.{k}" for k in CA_KNOBS]
    return tuple(found)


def applicable(depth: int, target: str, value: str) -> bool:
    return depth >= _NEEDS_DEPTH.get((target, value), 1)


# --- the spec -----------------------------------------------------------------------------------


def _check_deviations(instance, attribute, deviations) -> None:
    seen = set()
    for target, value in deviations:
        if target in seen:
            raise ValueError(f"deviation {target} given twice")
        seen.add(target)
        if target not in targets(instance.depth):
            raise ValueError(f"no knob {target} in a chain of depth {instance.depth}")
        if value not in knob_values(target):
            raise ValueError(f"{target} has no value {value!r}; one of {knob_values(target)}")


@attrs.frozen
class ChainSpec:
    """A chain: `depth` CAs above the leaf, key types (root, intermediates, leaf), deviations."""

    depth: int = 1
    keys: tuple[KeyType, KeyType, KeyType] = DEFAULT_KEYS
    deviations: tuple[tuple[str, str], ...] = attrs.field(default=(), validator=_check_deviations)
    at: dt.datetime = DEFAULT_AT

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.depth <= MAX_SPEC_DEPTH:
            raise ValueError(f"depth must be 1..{MAX_SPEC_DEPTH}, got {self.depth}")
        if any(k not in KEY_TYPES for k in self.keys):
            raise ValueError(f"key types must be among {KEY_TYPES}, got {self.keys}")
        if self.at.tzinfo is None:
            raise ValueError("the validation time must be timezone-aware")

    def get(self, target: str, default: str = "") -> str:
        return dict(self.deviations).get(target, default)

    def describe(self) -> str:
        """One readable line: `depth=2 keys=ec/ec/rsa leaf.validity=na_eq_t`."""
        parts = [f"depth={self.depth}"]
        if self.keys != DEFAULT_KEYS:
            parts.append("keys=" + "/".join(self.keys))
        parts += [f"{t}={v}" for t, v in self.deviations]
        if self.at != DEFAULT_AT:
            parts.append(f"at={self.at.isoformat()}")
        return " ".join(parts)

    def to_json(self) -> dict:
        return {
            "depth": self.depth,
            "keys": list(self.keys),
            "deviations": [list(d) for d in self.deviations],
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> ChainSpec:
        return cls(
            depth=data["depth"],
            keys=tuple(data["keys"]),
            deviations=tuple((t, v) for t, v in data["deviations"]),
            at=dt.datetime.fromisoformat(data["at"]),
        )


# --- the case ---------------------------------------------------------------------------------


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@attrs.frozen
class Case:
    """One generated validation problem: what a hostname trusts and what a client presents."""

    spec: ChainSpec
    anchors: tuple[bytes, ...] = attrs.field(repr=False)  # DER trust anchors
    leaf: bytes = attrs.field(repr=False)  # DER
    leaf_key: PrivateKey = attrs.field(eq=False, repr=False)
    intermediates: tuple[bytes, ...] = attrs.field(repr=False)  # DER, in send order
    at: dt.datetime = DEFAULT_AT  # the validation time
    expected: Reason | None = None  # the model's reason for the edge's verdict, if it knows
    foreign: bool = False  # issued under no anchor's key: must never verify

    @property
    def leaf_certificate(self) -> x509.Certificate:
        return _load(self.leaf)

    @property
    def intermediate_certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(_load(d) for d in self.intermediates)

    @property
    def anchor_certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(_load(d) for d in self.anchors)

    def credential(self) -> Credential:
        """What a client presents in a handshake: the leaf, its key, the intermediates."""
        return Credential(self.leaf_certificate, self.leaf_key, self.intermediate_certificates)

    def describe(self) -> str:
        return self.spec.describe()


@functools.lru_cache(maxsize=4096)
def _load(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


# --- names and keys per role ------------------------------------------------------------------

TENANT_ROOT_NAME = (("CN", "Corp Root CA"), ("O", "Corp"))
OTHER_ROOT_NAME = (("CN", "Other Root CA"), ("O", "Other"))
UNRELATED_NAME = (("CN", "Unrelated CA"), ("O", "Elsewhere"))
LEAF_DNS = "device-1.clients.corp.example"
OTHER_DNS = "device-1.clients.other.example"
LEAF_EMAIL = "device-1@corp.example"
PERMITTED_DOMAIN = "corp.example"
OTHER_DOMAIN = "other.example"

# Key slots in the pool, one per role, so two certificates share a key only when meant to: the
# tenant's intermediates and another tenant's (even with the very same names) never share one.
_KEY_SLOT = {
    "tenant": 0, "other_same_dn": 1, "other": 2, "decoy": 3, "leaf": 4, "impostor": 5,
    "unrelated": 6, "stranger": 7,
    "int": 7,  # the tenant's int1 -> 8, ..., int5 -> 12
    "foreign_int": 12,  # another tenant's int1 -> 13, ..., int5 -> 17
}
MAX_SPEC_DEPTH = 6
POOL_SIZE = 18

_POOL = KeyPool(size=POOL_SIZE)


def fuzz_pool() -> KeyPool:
    """The pool every generated case takes its keys from."""
    return _POOL


def warm_pool(key_types: Iterable[KeyType] = KEY_TYPES) -> None:
    """Make every key of the fuzz pool now (an RSA key takes tens of ms), so that no example
    pays for one and Hypothesis sees even run times."""
    for key_type in key_types:
        for index in range(_POOL.size):
            _POOL.key(key_type, index=index)


@attrs.frozen
class _KeyRef:
    key_type: KeyType
    slot: int

    def key(self) -> PrivateKey:
        return _POOL.key(self.key_type, index=self.slot)


def _name(parts: tuple[tuple[str, str], ...]) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts])


# --- one certificate --------------------------------------------------------------------------


@attrs.frozen
class _CertSpec:
    """Everything that goes into one certificate; hashable, so it keys the cache."""

    subject: tuple[tuple[str, str], ...]
    issuer: tuple[tuple[str, str], ...]
    key: _KeyRef
    signer: _KeyRef
    not_before: dt.datetime
    not_after: dt.datetime
    bc: tuple[bool, int | None] | None  # (ca, path length) or absent
    ku: tuple[str, ...] | None
    eku: tuple[str, ...] | None
    sans: tuple[tuple[str, str], ...]  # (kind, value)
    ski: bool
    aki: str  # "match" | "absent" | "mismatch"
    nc: tuple[tuple[str, ...], tuple[str, ...]] | None  # permitted, excluded DNS subtrees


_EKU = {
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}
_KU_FIELDS = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)
_SAN_KINDS = {"dns": x509.DNSName, "email": x509.RFC822Name}
_MISMATCHED_AKI_SLOT = _KEY_SLOT["stranger"]

_CACHE_LIMIT = 8192
_cache: dict[_CertSpec, x509.Certificate] = {}
stats = {"built": 0, "hits": 0}


def clear_cache() -> None:
    _cache.clear()


def _serial(spec: _CertSpec) -> int:
    """A positive 63-bit serial derived from the description: one certificate, one serial."""
    digest = hashlib.sha256(repr(spec).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1 | 1


def _signature_hash(signer: PrivateKey) -> hashes.HashAlgorithm | None:
    """As edge.pki.issuer signs: Ed25519 without a hash, P-384 with SHA-384, else SHA-256."""
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(signer, ec.EllipticCurvePrivateKey) and isinstance(signer.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def _certificate(spec: _CertSpec) -> x509.Certificate:
    found = _cache.get(spec)
    if found is not None:
        stats["hits"] += 1
        return found
    stats["built"] += 1
    key, signer = spec.key.key(), spec.signer.key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec.subject))
        .issuer_name(_name(spec.issuer))
        .public_key(key.public_key())
        .serial_number(_serial(spec))
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
    )
    if spec.bc is not None:
        ca, path_length = spec.bc
        builder = builder.add_extension(x509.BasicConstraints(ca, path_length), critical=True)
    if spec.ku is not None:
        flags = {f: f in spec.ku for f in _KU_FIELDS}
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if spec.eku is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([_EKU[e] for e in spec.eku]), critical=False
        )
    if spec.sans:
        names = [_SAN_KINDS[kind](value) for kind, value in spec.sans]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if spec.nc is not None:
        permitted, excluded = spec.nc
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(d) for d in permitted] or None,
            excluded_subtrees=[x509.DNSName(d) for d in excluded] or None,
        )
        builder = builder.add_extension(constraints, critical=True)
    if spec.ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    if spec.aki != "absent":
        aki_key = signer if spec.aki == "match" else _POOL.key("ec", index=_MISMATCHED_AKI_SLOT)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key.public_key()),
            critical=False,
        )
    certificate = builder.sign(signer, _signature_hash(signer))
    if len(_cache) >= _CACHE_LIMIT:
        del _cache[next(iter(_cache))]
    _cache[spec] = certificate
    return certificate


# --- knob values -> certificate fields ----------------------------------------------------------

_LEAF_WINDOW = (-30 * DAY, 365 * DAY)
_CA_WINDOW = (-365 * DAY, 5 * 365 * DAY)


def _window(value: str, default: tuple[int, int], at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    nb, na = default
    nb, na = {
        "": (nb, na),
        "expired": (-400 * DAY, -DAY),
        "not_yet_valid": (DAY, 400 * DAY),
        "nb_eq_t": (0, na),
        "nb_plus_1s": (1, na),
        "nb_minus_1s": (-1, na),
        "na_eq_t": (nb, 0),
        "na_minus_1s": (nb, -1),
        "na_plus_1s": (nb, 1),
    }[value]
    return at + dt.timedelta(seconds=nb), at + dt.timedelta(seconds=na)


def _ca_fields(spec: ChainSpec, role: str) -> dict:
    get = lambda knob: spec.get(f"{role}.{knob}")  # noqa: E731
    bc = {
        "": (True, None), "absent": None, "ca_false": (False, None),
        "pathlen_0": (True, 0), "pathlen_1": (True, 1),
    }[get("bc")]
    ku = {
        "": ("key_cert_sign", "crl_sign"), "absent": None, "no_keyCertSign": ("digital_signature",),
        "plus_digitalSignature": ("digital_signature", "key_cert_sign", "crl_sign"),
    }[get("ku")]
    eku = {
        "": None, "clientAuth": ("clientAuth",), "serverAuth": ("serverAuth",), "any": ("any",),
    }[get("eku")]
    nc = {
        "": None,
        "permit_leaf": ((PERMITTED_DOMAIN,), ()),
        "permit_other": ((OTHER_DOMAIN,), ()),
        "exclude_leaf": ((), (PERMITTED_DOMAIN,)),
        "exclude_other": ((), (OTHER_DOMAIN,)),
    }[get("nc")]
    window = _window(get("validity"), _CA_WINDOW, spec.at)
    return dict(
        not_before=window[0], not_after=window[1], bc=bc, ku=ku, eku=eku, sans=(),
        ski=get("ski") != "absent", aki=get("aki") or "match", nc=nc,
    )


def _leaf_fields(spec: ChainSpec) -> dict:
    get = lambda knob: spec.get(f"leaf.{knob}")  # noqa: E731
    bc = {"": (False, None), "absent": None, "ca_true": (True, None)}[get("bc")]
    ku = {
        "": ("digital_signature",), "absent": None, "keyEncipherment": ("key_encipherment",),
        "plus_keyCertSign": ("digital_signature", "key_cert_sign"),
    }[get("ku")]
    eku = {
        "": ("clientAuth",), "absent": None, "serverAuth": ("serverAuth",), "any": ("any",),
        "client_and_server": ("clientAuth", "serverAuth"),
    }[get("eku")]
    sans = {
        "": (("dns", LEAF_DNS),), "absent": (), "email": (("email", LEAF_EMAIL),),
        "dns_other": (("dns", OTHER_DNS),),
    }[get("san")]
    nc = {"": None, "present": ((PERMITTED_DOMAIN,), ())}[get("nc")]
    window = _window(get("validity"), _LEAF_WINDOW, spec.at)
    cn = {"": "device-1", "hostname": LEAF_DNS, "hostname_other": OTHER_DNS}[get("cn")]
    return dict(
        subject=(("CN", cn), ("O", "Corp")),
        not_before=window[0], not_after=window[1], bc=bc, ku=ku, eku=eku, sans=sans,
        ski=get("ski") != "absent", aki=get("aki") or "match", nc=nc,
    )


def _int_name(prefix: tuple[tuple[str, str], ...], level: int) -> tuple[tuple[str, str], ...]:
    cn = dict(prefix)["CN"].replace("Root CA", f"Issuing CA {level}")
    return (("CN", cn), *((k, v) for k, v in prefix if k != "CN"))


def _default_ca(subject, issuer, key: _KeyRef, signer: _KeyRef, at: dt.datetime) -> _CertSpec:
    window = _window("", _CA_WINDOW, at)
    return _CertSpec(
        subject=subject, issuer=issuer, key=key, signer=signer,
        not_before=window[0], not_after=window[1], bc=(True, None),
        ku=("key_cert_sign", "crl_sign"), eku=None, sans=(), ski=True, aki="match", nc=None,
    )


# --- the chain --------------------------------------------------------------------------------


def build_case(spec: ChainSpec) -> Case:
    """The certificates of `spec`, rendered (from the cache where possible) into a `Case`."""
    root_type, int_type, leaf_type = spec.keys
    issuer_kind = spec.get("chain.issuer")
    # Whose names and key the issuing chain carries.
    if issuer_kind == "other_tenant":
        top_name, root_slot = OTHER_ROOT_NAME, _KEY_SLOT["other"]
    elif issuer_kind == "other_tenant_same_dn":
        top_name, root_slot = TENANT_ROOT_NAME, _KEY_SLOT["other_same_dn"]
    else:
        top_name, root_slot = TENANT_ROOT_NAME, _KEY_SLOT["tenant"]

    # The CAs of the issuing chain, root first.
    cas: list[_CertSpec] = []
    names = [top_name] + [_int_name(top_name, i) for i in range(1, spec.depth)]
    int_slot = _KEY_SLOT["int" if root_slot == _KEY_SLOT["tenant"] else "foreign_int"]
    keys = [_KeyRef(root_type, root_slot)] + [
        _KeyRef(int_type, int_slot + i) for i in range(1, spec.depth)
    ]
    for i, role in enumerate(roles(spec.depth)[:-1]):
        signer = keys[i - 1] if i else keys[0]
        issuer_name = names[i - 1] if i else names[0]
        cas.append(_CertSpec(
            subject=names[i], issuer=issuer_name, key=keys[i], signer=signer,
            **_ca_fields(spec, role),
        ))
    built = [_certificate(c) for c in cas]

    # The leaf.
    leaf_key = _KeyRef(leaf_type, _KEY_SLOT["leaf"])
    leaf_fields = _leaf_fields(spec)
    if spec.get("chain.leaf") == "self_signed":
        leaf_issuer, leaf_signer = leaf_fields["subject"], leaf_key
    elif issuer_kind == "impostor":  # the issuer's name, another key of the same type
        leaf_issuer, leaf_signer = names[-1], _KeyRef(keys[-1].key_type, _KEY_SLOT["impostor"])
    else:
        leaf_issuer, leaf_signer = names[-1], keys[-1]
    leaf = _certificate(_CertSpec(
        issuer=leaf_issuer, key=leaf_key, signer=leaf_signer, **leaf_fields,
    ))

    # What the client sends: intermediates nearest first, then the presentation deviation.
    intermediates = built[:0:-1]
    send = spec.get("chain.send")
    if send == "none":
        intermediates = []
    elif send == "missing_issuer":
        intermediates = intermediates[1:]
    elif send == "missing_top":
        intermediates = intermediates[:-1]
    elif send == "duplicated":
        intermediates = [intermediates[0], *intermediates]
    elif send == "reversed":
        intermediates = intermediates[::-1]
    elif send == "with_root":
        intermediates = [*intermediates, built[0]]
    elif send == "extra_unrelated":
        unrelated_key = _KeyRef(root_type, _KEY_SLOT["unrelated"])
        unrelated = _certificate(
            _default_ca(UNRELATED_NAME, UNRELATED_NAME, unrelated_key, unrelated_key, spec.at)
        )
        intermediates = [unrelated, *intermediates]
    elif send == "decoy":
        # A CA with the name of the top intermediate and another key, sent first (the same
        # intermediate re-keyed, say), signed by the root; a root look-alike at depth 1.
        top = min(1, spec.depth - 1)
        decoy_key = _KeyRef(keys[top].key_type, _KEY_SLOT["decoy"])
        decoy_signer = keys[0] if top else decoy_key
        decoy = _certificate(
            _default_ca(names[top], names[0], decoy_key, decoy_signer, spec.at)
        )
        intermediates = [decoy, *intermediates]

    # What the hostname trusts: the tenant's own CA, in one of a few shapes.
    tenant_root = built[0] if top_name == TENANT_ROOT_NAME and root_slot == _KEY_SLOT["tenant"] \
        else _certificate(_default_ca(
            TENANT_ROOT_NAME, TENANT_ROOT_NAME, _KeyRef(root_type, _KEY_SLOT["tenant"]),
            _KeyRef(root_type, _KEY_SLOT["tenant"]), spec.at,
        ))
    anchor = spec.get("chain.anchor")
    other_same_dn_key = _KeyRef(root_type, _KEY_SLOT["other_same_dn"])
    other_same_dn = lambda: _certificate(_default_ca(  # noqa: E731
        TENANT_ROOT_NAME, TENANT_ROOT_NAME, other_same_dn_key, other_same_dn_key, spec.at
    ))
    if anchor == "intermediate":  # the tenant uploaded its top intermediate, not the root
        if issuer_kind in ("", "impostor"):
            anchors = [built[1]]
        else:
            tenant_key = _KeyRef(root_type, _KEY_SLOT["tenant"])
            anchors = [_certificate(_default_ca(
                _int_name(TENANT_ROOT_NAME, 1), TENANT_ROOT_NAME,
                _KeyRef(int_type, _KEY_SLOT["int"] + 1), tenant_key, spec.at,
            ))]
    elif anchor == "plus_other_same_dn":  # a second CA with the very same DN, another key
        anchors = [tenant_root, other_same_dn()]
    elif anchor == "plus_other_first":
        anchors = [other_same_dn(), tenant_root]
    else:
        anchors = [tenant_root]

    case = Case(
        spec=spec,
        anchors=tuple(_der(a) for a in anchors),
        leaf=_der(leaf),
        leaf_key=leaf_key.key(),
        intermediates=tuple(_der(c) for c in intermediates),
        at=spec.at,
        expected=None,
        foreign=_foreign(spec),
    )
    return attrs.evolve(case, expected=expected_reason(spec))


def _foreign(spec: ChainSpec) -> bool:
    """Was the chain issued under a key no anchor holds?"""
    if spec.get("chain.leaf") == "self_signed" or spec.get("chain.issuer") == "impostor":
        return True
    issuer = spec.get("chain.issuer")
    if issuer == "other_tenant":
        return True
    if issuer == "other_tenant_same_dn":
        # only trusted when the hostname also trusts that other tenant's CA
        return spec.get("chain.anchor") not in ("plus_other_same_dn", "plus_other_first")
    return False


# --- the model ----------------------------------------------------------------------------------
# The edge's reason for a chain with at most one deviation, as OpenSSL 3.0 with the edge's settings
# decides it; docs/validation-differences.md says where pyca/cryptography differs and who is right.
# Keys: (role kind, knob, value), the role kind being leaf / int (any intermediate) / root /
# chain. Path lengths are worked out from the position instead. No entry: the model does not know.

_OK = Reason.OK
_TIME_MODEL = {
    "expired": Reason.EXPIRED, "not_yet_valid": Reason.NOT_YET_VALID,
    "na_eq_t": Reason.EXPIRED,  # OpenSSL: expired AT notAfter (RFC 5280: still valid)
    "nb_eq_t": _OK, "na_minus_1s": Reason.EXPIRED, "na_plus_1s": _OK, "nb_minus_1s": _OK,
    "nb_plus_1s": Reason.NOT_YET_VALID,
}
_MODEL: dict[tuple[str, str, str], Reason] = {
    (kind, "validity", value): reason
    for kind in ("leaf", "int", "root")
    for value, reason in _TIME_MODEL.items()
}
_MODEL.update({
    ("leaf", "san", "absent"): _OK,
    ("leaf", "san", "email"): _OK,
    ("leaf", "san", "dns_other"): _OK,
    ("leaf", "eku", "absent"): _OK,
    ("leaf", "eku", "serverAuth"): Reason.WRONG_PURPOSE,
    ("leaf", "eku", "any"): Reason.WRONG_PURPOSE,  # anyExtendedKeyUsage alone is not clientAuth
    ("leaf", "eku", "client_and_server"): _OK,
    ("leaf", "ku", "absent"): _OK,
    ("leaf", "ku", "keyEncipherment"): Reason.WRONG_PURPOSE,
    ("leaf", "ku", "plus_keyCertSign"): _OK,
    ("leaf", "bc", "absent"): _OK,
    ("leaf", "bc", "ca_true"): _OK,
    ("leaf", "aki", "absent"): _OK,
    ("leaf", "aki", "mismatch"): Reason.UNKNOWN_CA,
    ("leaf", "ski", "absent"): _OK,
    ("leaf", "nc", "present"): _OK,
    ("leaf", "cn", "hostname"): _OK,
    ("leaf", "cn", "hostname_other"): _OK,
    ("int", "bc", "absent"): Reason.INVALID_CA,
    ("int", "bc", "ca_false"): Reason.INVALID_CA,
    ("int", "ku", "absent"): _OK,
    ("int", "ku", "no_keyCertSign"): Reason.INVALID_CA,
    ("int", "ku", "plus_digitalSignature"): _OK,
    ("int", "eku", "clientAuth"): _OK,
    ("int", "eku", "serverAuth"): Reason.WRONG_PURPOSE,
    ("int", "eku", "any"): Reason.WRONG_PURPOSE,
    ("int", "aki", "absent"): _OK,
    ("int", "aki", "mismatch"): Reason.UNKNOWN_CA,
    ("int", "ski", "absent"): _OK,
    ("root", "bc", "absent"): _OK,  # a self-signed anchor needs no BasicConstraints in OpenSSL
    ("root", "bc", "ca_false"): Reason.INVALID_CA,
    ("root", "ku", "absent"): _OK,
    ("root", "ku", "no_keyCertSign"): Reason.INVALID_CA,
    ("root", "ku", "plus_digitalSignature"): _OK,
    ("root", "eku", "clientAuth"): _OK,
    ("root", "eku", "serverAuth"): Reason.WRONG_PURPOSE,
    ("root", "eku", "any"): Reason.WRONG_PURPOSE,
    ("root", "aki", "absent"): _OK,
    ("root", "ski", "absent"): _OK,
    ("chain", "issuer", "other_tenant"): Reason.UNKNOWN_CA,
    ("chain", "issuer", "other_tenant_same_dn"): Reason.UNKNOWN_CA,
    ("chain", "issuer", "impostor"): Reason.UNKNOWN_CA,  # the AKI names the impostor's key
    ("chain", "send", "none"): Reason.UNKNOWN_CA,
    ("chain", "send", "missing_issuer"): Reason.UNKNOWN_CA,
    ("chain", "send", "missing_top"): Reason.UNKNOWN_CA,
    ("chain", "send", "duplicated"): _OK,
    ("chain", "send", "reversed"): _OK,
    ("chain", "send", "with_root"): _OK,
    ("chain", "send", "extra_unrelated"): _OK,
    ("chain", "send", "decoy"): _OK,
    ("chain", "anchor", "intermediate"): Reason.UNKNOWN_CA,  # no partial chains
    ("chain", "anchor", "plus_other_same_dn"): _OK,
    ("chain", "anchor", "plus_other_first"): _OK,
    ("chain", "leaf", "self_signed"): Reason.SELF_SIGNED,
})
for _kind in ("int", "root"):
    for _value, _reason in {
        "permit_leaf": _OK, "permit_other": Reason.NAME_CONSTRAINTS,
        "exclude_leaf": Reason.NAME_CONSTRAINTS, "exclude_other": _OK,
    }.items():
        _MODEL[_kind, "nc", _value] = _reason


def _kind(role: str) -> str:
    return role if role in ("leaf", "root", "chain") else "int"


def _level(role: str) -> int:
    """0 for the root, i for int<i>."""
    return 0 if role == "root" else int(role.removeprefix("int"))


def expected_reason(spec: ChainSpec, *, max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH) -> Reason | None:
    """The model's reason for the edge's verdict: OK without deviations, the table's entry for a
    single one, None where it does not know (two or more deviations, or an unlisted one).

    `max_chain_depth` is the edge's limit on intermediates: a longer chain is CHAIN_TOO_DEEP.
    """
    if spec.depth - 1 > max_chain_depth:
        return Reason.CHAIN_TOO_DEEP if not spec.deviations else None
    if not spec.deviations:
        return Reason.OK
    if len(spec.deviations) > 1:
        return None
    ((target, value),) = spec.deviations
    role, _, knob = target.partition(".")
    if (role, knob, value) == ("root", "aki", "mismatch"):
        # Not self-signed to OpenSSL: the root counts as one more untrusted CA above the chain.
        return Reason.CHAIN_TOO_DEEP if spec.depth > max_chain_depth else Reason.UNKNOWN_CA
    if knob == "bc" and value.startswith("pathlen_"):
        below = spec.depth - 1 - _level(role)  # intermediates under this CA
        return Reason.INVALID_CA if below > int(value.removeprefix("pathlen_")) else _OK
    return _MODEL.get((_kind(role), knob, value))
