"""Named client-certificate profiles: what a simulated client fleet carries, and what it should get.

Each profile is built against a tenant CA (the `Authority` whose certificate is uploaded and
associated with the hostname) at a simulated `now`: validity windows are relative to it, never to
the wall clock, so a rehearsal can watch a fleet expire mid-rollout.

Expected outcomes, as OpenSSL 3.0 reports them with the tenant CA as the only trust anchor and
the ssl_client purpose (the edge's settings):

| profile              | what the client sends                             | code | reason         |
|----------------------|---------------------------------------------------|------|----------------|
| valid                | leaf from the tenant CA, clientAuth               |    0 | OK             |
| expired              | notAfter = now - 1 day                            |   10 | EXPIRED        |
| not_yet_valid        | notBefore = now + 1 day                           |    9 | NOT_YET_VALID  |
| other_ca             | leaf from an unrelated CA                         |   20 | UNKNOWN_CA     |
| self_signed          | a leaf that signs itself                          |   18 | SELF_SIGNED    |
| none                 | no certificate at all                             |    - | NO_CERT        |
| missing_intermediate | leaf from the tenant's intermediate, not sent     |   20 | UNKNOWN_CA     |
| with_intermediate    | leaf from the tenant's intermediate, sent         |    0 | OK             |
| eku_server_only      | EKU serverAuth only                               |   26 | WRONG_PURPOSE  |
| no_eku               | no EKU extension (OpenSSL accepts it for clients) |    0 | OK             |
| too_deep             | `depth` intermediates under the tenant, all sent  |   22 | CHAIN_TOO_DEEP |
| same_dn_other_key    | from a CA with the tenant's DN but another key    |   20 | UNKNOWN_CA     |

Two outcomes depend on settings outside the certificates:
- too_deep is 22 only when the edge limits the verify depth below `depth` intermediates. The edge
  allows 4 by default (`edge.node.trust.DEFAULT_MAX_CHAIN_DEPTH`), so the default of 6 exceeds
  it; under OpenSSL's own default limit (100) the same chain verifies (0).
- same_dn_other_key is 20 because the leaf's AuthorityKeyIdentifier names the impostor's key, so
  OpenSSL never takes the tenant CA as a candidate issuer. Without an AKI it would pick the tenant
  CA by name and fail the signature instead (7, BAD_SIGNATURE).

Per-tenant CAs (the intermediate, the deep chain, the unrelated CA, the impostor) are made once
per tenant and cached: they inherit the tenant's validity window, so one set serves every `now`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable

import attrs
from cryptography.x509.oid import NameOID

from edge.pki import formats
from edge.pki.issuer import Authority, Credential, KeyPool, KeyType, key_type_of, self_signed


class Profile(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    OTHER_CA = "other_ca"
    SELF_SIGNED = "self_signed"
    NONE = "none"
    MISSING_INTERMEDIATE = "missing_intermediate"
    WITH_INTERMEDIATE = "with_intermediate"
    EKU_SERVER_ONLY = "eku_server_only"
    NO_EKU = "no_eku"
    TOO_DEEP = "too_deep"
    SAME_DN_OTHER_KEY = "same_dn_other_key"


# Reason names as edge.node.reasons.Reason spells them (pki does not import the node layer).
EXPECTED_REASON: dict[Profile, str] = {
    Profile.VALID: "OK",
    Profile.EXPIRED: "EXPIRED",
    Profile.NOT_YET_VALID: "NOT_YET_VALID",
    Profile.OTHER_CA: "UNKNOWN_CA",
    Profile.SELF_SIGNED: "SELF_SIGNED",
    Profile.NONE: "NO_CERT",
    Profile.MISSING_INTERMEDIATE: "UNKNOWN_CA",
    Profile.WITH_INTERMEDIATE: "OK",
    Profile.EKU_SERVER_ONLY: "WRONG_PURPOSE",
    Profile.NO_EKU: "OK",
    Profile.TOO_DEEP: "CHAIN_TOO_DEEP",
    Profile.SAME_DN_OTHER_KEY: "UNKNOWN_CA",
}

# The raw X509_V_ERR code behind each reason (None: no certificate, so nothing was verified).
# TOO_DEEP assumes the edge's depth limit is below the chain's; see the module docstring.
EXPECTED_VERIFY_CODE: dict[Profile, int | None] = {
    Profile.VALID: 0,
    Profile.EXPIRED: 10,
    Profile.NOT_YET_VALID: 9,
    Profile.OTHER_CA: 20,
    Profile.SELF_SIGNED: 18,
    Profile.NONE: None,
    Profile.MISSING_INTERMEDIATE: 20,
    Profile.WITH_INTERMEDIATE: 0,
    Profile.EKU_SERVER_ONLY: 26,
    Profile.NO_EKU: 0,
    Profile.TOO_DEEP: 22,
    Profile.SAME_DN_OTHER_KEY: 20,
}

ASSUMED_EDGE_MAX_DEPTH = 4  # intermediates the edge accepts; too_deep must exceed it
DEFAULT_TOO_DEEP = 6

LEAF_LIFETIME = dt.timedelta(days=90)
_MARGIN = dt.timedelta(days=1)  # how far `now` sits inside or outside a window


# --- per-tenant CAs, cached -----------------------------------------------------------------

_CACHE_LIMIT = 512
_cache: dict[tuple[Authority, str, int], Authority] = {}


def clear_cache() -> None:
    """Forget every per-tenant CA (tests that count key generations start from here)."""
    _cache.clear()


def _cached(tenant: Authority, role: str, depth: int, make: Callable[[], Authority]) -> Authority:
    """Build a tenant's helper CA once; the oldest entry goes when the cache is full."""
    key = (tenant, role, depth)
    if key not in _cache:
        if len(_cache) >= _CACHE_LIMIT:
            del _cache[next(iter(_cache))]
        _cache[key] = make()
    return _cache[key]


def _label(tenant: Authority) -> str:
    names = tenant.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else formats.dn_rfc2253(tenant.subject)


def _window(tenant: Authority) -> dict[str, dt.datetime]:
    certificate = tenant.certificate
    return {
        "not_before": certificate.not_valid_before_utc,
        "not_after": certificate.not_valid_after_utc,
    }


def tenant_intermediate(tenant: Authority, *, pool: KeyPool | None = None) -> Authority:
    """The tenant's one issuing intermediate, shared by with_ and missing_intermediate."""
    return _cached(
        tenant, "intermediate", 1,
        lambda: tenant.sub_ca({"CN": f"{_label(tenant)} Issuing CA"}, pool=pool),
    )


def deep_chain(tenant: Authority, depth: int, *, pool: KeyPool | None = None) -> Authority:
    """The lowest of `depth` intermediates stacked under the tenant CA."""
    if depth < 1:
        raise ValueError("a deep chain needs at least one intermediate")

    def make() -> Authority:
        parent = deep_chain(tenant, depth - 1, pool=pool) if depth > 1 else tenant
        return parent.sub_ca({"CN": f"{_label(tenant)} Level {depth} CA"}, pool=pool)

    return _cached(tenant, "deep", depth, make)


def unrelated_ca(tenant: Authority, *, pool: KeyPool | None = None) -> Authority:
    """A root with its own name and key: nothing the tenant ever trusted."""
    return _cached(
        tenant, "other", 0,
        lambda: Authority.root(
            {"CN": f"Unrelated CA (not {_label(tenant)})", "O": "Elsewhere"},
            pool=pool, exclude_keys=[tenant.key], **_window(tenant),
        ),
    )


def impostor_ca(tenant: Authority, *, pool: KeyPool | None = None) -> Authority:
    """A root with byte-for-byte the tenant CA's subject DN and a different key of the same type."""
    return _cached(
        tenant, "impostor", 0,
        lambda: Authority.root(
            tenant.subject, key_type=key_type_of(tenant.key), pool=pool,
            exclude_keys=[tenant.key], **_window(tenant),
        ),
    )


# --- profiles -------------------------------------------------------------------------------


@attrs.frozen
class _Request:
    """One issue() call's parameters, so each profile is a one-line function of them."""

    tenant: Authority
    now: dt.datetime
    key_type: KeyType
    subject_cn: str
    pool: KeyPool | None
    depth: int

    def leaf(self, issuer: Authority, **knobs) -> Credential:
        knobs.setdefault("not_before", self.now - _MARGIN)
        knobs.setdefault("not_after", self.now + LEAF_LIFETIME)
        return issuer.issue(
            {"CN": self.subject_cn}, key_type=self.key_type, pool=self.pool, **knobs
        )


def _valid(r: _Request) -> Credential:
    return r.leaf(r.tenant)


def _expired(r: _Request) -> Credential:
    return r.leaf(r.tenant, not_before=r.now - LEAF_LIFETIME, not_after=r.now - _MARGIN)


def _not_yet_valid(r: _Request) -> Credential:
    return r.leaf(r.tenant, not_before=r.now + _MARGIN, not_after=r.now + LEAF_LIFETIME)


def _other_ca(r: _Request) -> Credential:
    return r.leaf(unrelated_ca(r.tenant, pool=r.pool))


def _self_signed(r: _Request) -> Credential:
    return self_signed(
        {"CN": r.subject_cn}, key_type=r.key_type, pool=r.pool,
        not_before=r.now - _MARGIN, not_after=r.now + LEAF_LIFETIME,
    )


def _missing_intermediate(r: _Request) -> Credential:
    return attrs.evolve(_with_intermediate(r), chain=())


def _with_intermediate(r: _Request) -> Credential:
    return r.leaf(tenant_intermediate(r.tenant, pool=r.pool))


def _eku_server_only(r: _Request) -> Credential:
    return r.leaf(r.tenant, eku=["serverAuth"])


def _no_eku(r: _Request) -> Credential:
    return r.leaf(r.tenant, eku=None)


def _too_deep(r: _Request) -> Credential:
    return r.leaf(deep_chain(r.tenant, r.depth, pool=r.pool))


def _same_dn_other_key(r: _Request) -> Credential:
    return r.leaf(impostor_ca(r.tenant, pool=r.pool))


_BUILDERS: dict[Profile, Callable[[_Request], Credential]] = {
    Profile.VALID: _valid,
    Profile.EXPIRED: _expired,
    Profile.NOT_YET_VALID: _not_yet_valid,
    Profile.OTHER_CA: _other_ca,
    Profile.SELF_SIGNED: _self_signed,
    Profile.MISSING_INTERMEDIATE: _missing_intermediate,
    Profile.WITH_INTERMEDIATE: _with_intermediate,
    Profile.EKU_SERVER_ONLY: _eku_server_only,
    Profile.NO_EKU: _no_eku,
    Profile.TOO_DEEP: _too_deep,
    Profile.SAME_DN_OTHER_KEY: _same_dn_other_key,
}


def issue(
    profile: Profile | str,
    tenant: Authority,
    *,
    now: dt.datetime,
    key_type: KeyType = "ec",
    subject_cn: str = "client",
    pool: KeyPool | None = None,
    depth: int = DEFAULT_TOO_DEEP,
) -> Credential | None:
    """The credential a client of `profile` carries for a hostname trusting `tenant`, at `now`.

    None for `Profile.NONE`. `depth` is the number of intermediates of too_deep only. A fresh
    leaf (new serial) every call; the CAs behind it are the tenant's cached ones.
    """
    profile = Profile(profile)
    if now.tzinfo is None:
        raise ValueError("`now` must be a timezone-aware datetime")
    if profile is Profile.NONE:
        return None
    request = _Request(tenant, now, key_type, subject_cn, pool, depth)
    return _BUILDERS[profile](request)
