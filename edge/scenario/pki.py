"""The scenario's PKI made real: generated CAs, CAs loaded from PEM files, fleet credentials.

Generation happens once, before the simulation starts, with validity windows relative to the
scenario's start; so a certificate can be made to expire in the middle of a rollout.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.pki import profiles
from edge.pki.issuer import Authority, Credential
from edge.scenario import model as m


@attrs.frozen
class Ca:
    """A CA of the scenario: its certificate and, if known, its key."""

    certificate_pem: str
    authority: Authority | None  # None: loaded without a key, upload only
    parent: Ca | None = None

    @property
    def bundle_pem(self) -> str:
        """What `upload_ca` uploads: this CA, then its parents up to the root, as a bundle."""
        return self.certificate_pem + (self.parent.bundle_pem if self.parent else "")


def _load(spec: m.CaSpec, base: Path) -> Ca:
    text = (base / spec.pem).read_text(encoding="ascii")
    if spec.key_pem is None:
        return Ca(text, None)
    certificate = x509.load_pem_x509_certificate(text.encode("ascii"))
    key = serialization.load_pem_private_key((base / spec.key_pem).read_bytes(), password=None)
    return Ca(text, Authority(certificate, key))


def build_cas(scenario: m.Scenario, base: Path) -> dict[str, Ca]:
    """Every CA of [pki], parents before children."""
    start = scenario.meta.start
    built: dict[str, Ca] = {}

    def make(name: str) -> Ca:
        if name in built:
            return built[name]
        spec = scenario.pki[name]
        if spec.pem is not None:
            ca = _load(spec, base)
        else:
            window = dict(not_before=start + spec.valid_from, not_after=start + spec.valid_until)
            options = dict(path_length=spec.path_length, key_type=spec.key, **window)
            if spec.parent is None:
                authority = Authority.root(spec.subject, **options)
            else:
                parent = make(spec.parent)
                authority = parent.authority.sub_ca(spec.subject, **options)
                built[name] = Ca(authority.certificate_pem, authority, parent)
                return built[name]
            ca = Ca(authority.certificate_pem, authority)
        built[name] = ca
        return ca

    for name in scenario.pki:
        make(name)
    return built


def fleet_credential(
    fleet: m.FleetSpec, cas: dict[str, Ca], start: dt.datetime
) -> Credential | None:
    """The certificate a profile fleet carries (managed fleets get theirs from the plane)."""
    cert = fleet.cert
    if cert is None or cert.profile is profiles.Profile.NONE:
        return None
    authority = cas[cert.issuer].authority
    if cert.valid_from is not None or cert.valid_until is not None:
        credential = authority.issue(
            {"CN": fleet.name},
            not_before=start + (cert.valid_from or m.Offset(days=-1)),
            not_after=start + (cert.valid_until or m.Offset(days=365)),
            key_type=cert.key,
        )
    else:
        credential = profiles.issue(
            cert.profile, authority, now=start, key_type=cert.key, subject_cn=fleet.name,
            depth=cert.depth,
        )
    return credential if cert.send_chain else attrs.evolve(credential, chain=())
