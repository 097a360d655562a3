"""Random command sequences against the control-plane store, checked against a simple model.

A `RuleBasedStateMachine` drives `apply(store, command, now)` with accepted and refused commands
alike. For every command the model predicts the outcome (the refusal code, or the change), and
after every step the invariants below are checked:

- quotas: uploads per account <= `ca_quota[plan]`, non-revoked client certificates per zone <=
  `client_certificate_quota`;
- associations point only at existing CAs, and a BYOCA only into zones of its own account;
- a refused command changes nothing (the held store equals a deep copy taken before);
- each accepted change bumps the version by exactly one, reads return the very same store;
- the incremental snapshot equals a fresh one, and its host policies stay inside the tenant;
- the store agrees with the model (CA ids per account, associations, client certificate statuses,
  rules, zones).

Certificates, CSRs and keys are made once at import so that examples stay fast.
"""

from __future__ import annotations

import copy
import datetime as dt

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from edge.control import commands as c
from edge.control import errors as e
from edge.control.errors import ApiError
from edge.control.records import ClientCertificateStatus, ManagedCaScope, Plan, Rule
from edge.control.snapshot import build_snapshot
from edge.control.store import Settings, apply, new_store

Status = ClientCertificateStatus
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
GHOST = "00000000-0000-4000-8000-000000000000"  # an id nothing ever has

# --- the certificate pool, made once -----------------------------------------------------------


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _ed25519_ca() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ed25519 CA")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None)
    )
    return _pem(certificate)


def _csr(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


_CAS = [trustme.CA(organization_name=f"Tenant CA {i}") for i in range(3)]
_CA_PEMS = [ca.cert_pem.bytes().decode("ascii") for ca in _CAS]
_CHILD = _CAS[0].create_child_ca()
_LEAF = _CAS[1].issue_cert("client.example.com").cert_chain_pems[0].bytes().decode("ascii")
_KEY_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode("ascii")
)
CSRS = [_csr("device-1"), _csr("device-2")]

# (pem, kind): kind says what the store must make of it.
#   "ca": every certificate is a CA; "leaf": some certificate is not (refused with ca=true);
#   "badsig": Ed25519 (refused either way); "garbage": not PEM certificates at all.
PEMS = [
    (_CA_PEMS[0], "ca"),
    (_CA_PEMS[1], "ca"),
    (_CA_PEMS[2], "ca"),
    (_CA_PEMS[2] + "\n\n\n", "ca"),  # trailing newlines are normalised
    (_CHILD.cert_pem.bytes().decode("ascii") + _CA_PEMS[0], "ca"),  # intermediate + root bundle
    (_LEAF, "leaf"),
    (_LEAF + _CA_PEMS[1], "leaf"),  # leaf + its CA
    (_ed25519_ca(), "badsig"),
    ("this is not a certificate", "garbage"),
    (_KEY_PEM, "garbage"),
    (CSRS[0], "garbage"),
    ("-----BEGIN CERTIFICATE-----\nbm90IERFUg==\n-----END CERTIFICATE-----\n", "garbage"),
    ("é".encode("utf-8"), "garbage"),
]

# --- names --------------------------------------------------------------------------------------

# Zones made at start: (account, name); sub.a.test is a zone inside the same account's a.test.
START_ZONES = [
    ("ent", "a.test"),
    ("ent", "sub.a.test"),
    ("ent", "b.test"),
    ("pro", "p.test"),
]
# Zones a rule may create later: new ones, ones inside or around existing zones (refused across
# accounts, or when they would take hostnames the parent zone has associated), taken and bad names.
LATE_ZONE_NAMES = [
    "c.test",
    "q.test",
    "zz.c.test",
    "pro.b.test",
    "x.sub.a.test",
    "w.p.test",
    "a.test",
    "nodots",
    "*.c.test",
    "Bad_Name.test",
]
HOSTNAMES = [
    "a.test",
    "www.a.test",
    "API.A.test.",  # normalised to api.a.test
    "api.a.test",
    "sub.a.test",
    "x.sub.a.test",
    "b.test",
    "m.b.test",
    "pro.b.test",
    "w.pro.b.test",
    "p.test",
    "w.p.test",
    "w.c.test",
    "elsewhere.example",
]
BAD_HOSTNAMES = ["*.a.test", "single", "", "under_score.a.test", "-lead.a.test", 7]
VALIDITY = [1, 30, 3650, 36500, 0, -5, 36501, True, 3.5, "30"]
ACTIONS = ["log", "block", "skip", "allow", "BLOCK", ""]
EXPRESSIONS = {  # expression -> whether the rules language accepts it
    "not cf.tls_client_auth.cert_verified": True,
    'http.host eq "api.a.test" and not cf.tls_client_auth.cert_verified': True,
    "   ": False,
    "not (": False,
}


def _normal(hostname: str) -> str:
    return hostname.lower().rstrip(".")


# --- the machine --------------------------------------------------------------------------------


class StoreMachine(RuleBasedStateMachine):
    # model state
    accounts: dict[str, Plan]  # account id -> plan
    account_keys: dict[str, str]  # "ent"/"pro" -> account id
    zones: dict[str, tuple[str, str]]  # zone id -> (account id, name)
    cas: dict[str, tuple[str, bool]]  # upload id -> (account id, ca flag)
    known_ca_ids: list[str]  # every id ever uploaded, deleted ones too
    assoc: dict[tuple[str, str | None], tuple[str, ...]]  # (zone, upload id or None) -> hosts
    certs: dict[str, tuple[str, Status]]  # client certificate id -> (zone id, status)
    rules: dict[str, tuple[Rule, ...]]
    version: int

    @initialize(
        scope=st.sampled_from(list(ManagedCaScope)),
        ca_quota=st.sampled_from([5, 2]),
        lived_in=st.booleans(),
    )
    def setup(self, scope, ca_quota, lived_in):
        quotas = {Plan.ENTERPRISE: ca_quota, Plan.BUSINESS: 0, Plan.PRO: 0, Plan.FREE: 0}
        self.settings = Settings(
            managed_ca_scope=scope, ca_quota=quotas, client_certificate_quota=2
        )
        self.store = new_store(self.settings, now=NOW)
        self.snapshot = build_snapshot(self.store)
        self.version = 0
        self.accounts, self.account_keys, self.zones = {}, {}, {}
        self.cas, self.known_ca_ids, self.assoc, self.certs, self.rules = {}, [], {}, {}, {}
        for key, plan in [("ent", Plan.ENTERPRISE), ("pro", Plan.PRO)]:
            account = self._ok(c.CreateAccount(f"{key} inc", plan))
            self.accounts[account.id] = plan
            self.account_keys[key] = account.id
        for key, name in START_ZONES:
            zone = self._ok(c.CreateZone(self.account_keys[key], name))
            self.zones[zone.id] = (zone.account_id, name)
            self.rules[zone.id] = ()
        if lived_in:  # start from a store in use: a BYOCA and the managed CA associated
            ent = self.account_keys["ent"]
            by_name = {name: zone_id for zone_id, (_, name) in self.zones.items()}
            record = self._upload(ent, _CA_PEMS[0], "ca", True)
            self._upload(ent, _LEAF, "leaf", False)  # kept, but never associable
            self._put(by_name["a.test"], record.id, ["www.a.test", "api.a.test"])
            self._put(by_name["sub.a.test"], record.id, ["x.sub.a.test"])
            self._put(by_name["a.test"], None, ["api.a.test"])
            self._put(by_name["p.test"], None, ["w.p.test"])
            self._create_client_certificate(by_name["p.test"], CSRS[0], 365)

    # --- running a command ----------------------------------------------------------------------

    def _run(self, command, *, refused: int | None = None, read=False, changes=True):
        """Apply `command`, check the predicted outcome, and keep the new store and snapshot."""
        held = self.store
        before = copy.deepcopy(held)
        try:
            applied = apply(held, command, NOW)
        except ApiError as err:
            assert refused is not None, f"{command!r} was refused unexpectedly: {err}"
            assert err.code == refused, f"{command!r}: expected code {refused}, got {err}"
            event(f"refused {type(command).__name__} {err.code}")
            assert self.store is held
            assert held == before, f"refused {command!r} changed the store in place"
            assert held.version == before.version == self.version
            assert self.snapshot.version == self.version
            return None
        assert refused is None, f"{command!r} was accepted, expected refusal {refused}"
        event(f"accepted {type(command).__name__}")
        if read or not changes:
            assert applied.store is held, f"{command!r} should leave the very same store"
            assert held == before
            return applied.result
        assert applied.store is not held
        assert held == before, f"{command!r} changed the caller's store in place"
        self.version += 1
        assert applied.store.version == held.version + 1 == self.version
        self.store = applied.store
        previous = self.snapshot
        self.snapshot = build_snapshot(self.store, previous)
        assert self.snapshot.version == previous.version + 1
        return applied.result

    def _ok(self, command):
        return self._run(command)

    # Choices of ids: mostly real ones, now and then GHOST (drawn first, so it shrinks to real).
    @staticmethod
    def _pick(data, ids, label, ghost=True):
        if not ids or (ghost and data.draw(st.integers(0, 5), label=f"{label} is ghost") == 5):
            return GHOST
        return data.draw(st.sampled_from(ids), label=label)

    def _account_choice(self, data, *, ghost=True):
        return self._pick(data, sorted(self.accounts), "account", ghost)

    def _zone_choice(self, data):
        return self._pick(data, sorted(self.zones), "zone")

    def _ca_choice(self, data):
        """Live uploads first; deleted ids (and GHOST) stay possible."""
        live = [i for i in self.known_ca_ids if i in self.cas]
        if live and data.draw(st.booleans(), label="a live ca"):
            return data.draw(st.sampled_from(live), label="ca id")
        return self._pick(data, self.known_ca_ids, "any ca id")

    def _cert_choice(self, data, *preferred: Status):
        """Half the time a certificate in one of the `preferred` statuses, if there is one."""
        wanted = sorted(i for i, (_, s) in self.certs.items() if s in preferred)
        if wanted and data.draw(st.booleans(), label="preferred status"):
            return data.draw(st.sampled_from(wanted), label="client cert")
        return self._pick(data, sorted(self.certs), "client cert")

    def _hostnames_for(self, data, zone_id):
        """Mostly the zone's own hostnames, sometimes anything, bad names included."""
        mine = [h for h in HOSTNAMES if self._owner(_normal(h)) == zone_id]
        if mine and data.draw(st.integers(0, 3), label="any hostnames") != 0:
            hosts = st.lists(st.sampled_from(mine), min_size=1, max_size=3)
            return data.draw(hosts, label="hosts")
        pool = HOSTNAMES + BAD_HOSTNAMES
        return data.draw(st.lists(st.sampled_from(pool), max_size=3), label="hosts")

    def _owner(self, hostname: str) -> str | None:
        """The model's owning zone: the most specific zone whose name is a suffix."""
        names = {name: zone_id for zone_id, (_, name) in self.zones.items()}
        labels = hostname.split(".")
        for start in range(len(labels) - 1):
            found = names.get(".".join(labels[start:]))
            if found is not None:
                return found
        return None

    def _uploads_of(self, account_id: str) -> int:
        return sum(1 for owner, _ in self.cas.values() if owner == account_id)

    def _holding(self, zone_id: str) -> int:
        return sum(1 for z, s in self.certs.values() if z == zone_id and s is not Status.REVOKED)

    # --- accounts and zones ---------------------------------------------------------------------

    @rule(
        name=st.sampled_from(["late inc", "", "   ", 5]),
        plan=st.sampled_from(["pro", "enterprise", "gold"]),
    )
    def create_account(self, name, plan):
        if not isinstance(name, str) or not name.strip():
            self._run(c.CreateAccount(name, plan), refused=e.INVALID_REQUEST)
        elif plan not in {p.value for p in Plan}:
            self._run(c.CreateAccount(name, plan), refused=e.INVALID_REQUEST)
        elif len(self.accounts) < 4:
            account = self._ok(c.CreateAccount(name, plan))
            assert account.id not in self.accounts
            self.accounts[account.id] = Plan(plan)

    @rule(data=st.data(), name=st.sampled_from(LATE_ZONE_NAMES))
    def create_zone(self, data, name):
        account_id = self._account_choice(data)
        command = c.CreateZone(account_id, name)
        if account_id not in self.accounts:
            self._run(command, refused=e.ACCOUNT_NOT_FOUND)
        elif "." not in name or "*" in name or "_" in name:
            self._run(command, refused=e.INVALID_HOSTNAME)
        elif any(n == name for _, n in self.zones.values()):
            self._run(command, refused=e.ZONE_EXISTS)
        elif self._overlaps(account_id, name):
            self._run(command, refused=e.ZONE_OVERLAPS)
        else:
            zone = self._ok(command)
            assert (zone.account_id, zone.name) == (account_id, name)
            self.zones[zone.id] = (account_id, name)
            self.rules[zone.id] = ()

    def _overlaps(self, account_id: str, name: str) -> bool:
        """Nested with another account's zone, or taking hostnames its parent associated."""
        for zone_id, (owner, other) in self.zones.items():
            inside = name.endswith("." + other)
            if not (inside or other.endswith("." + name)):
                continue
            if owner != account_id:
                return True
            taken = [
                h
                for (z, _), hosts in self.assoc.items()
                if z == zone_id
                for h in hosts
                if h == name or h.endswith("." + name)
            ]
            if inside and taken:
                return True
        return False

    @rule()
    def reads_of_accounts_and_zones(self):
        assert {a.id for a in self._run(c.ListAccounts(), read=True)} == set(self.accounts)
        assert {z.id for z in self._run(c.ListZones(), read=True)} == set(self.zones)
        found = self._run(c.ListZones(name="SUB.A.TEST"), read=True)
        assert [z.name for z in found] == ["sub.a.test"]
        assert self._run(c.ListZones(name="nowhere.test"), read=True) == ()
        self._run(c.ListZones(name=5), refused=e.INVALID_REQUEST)

    @rule()
    def unknown_command(self):
        self._run(object(), refused=e.INVALID_REQUEST)

    # --- account CA store -----------------------------------------------------------------------

    def _upload(self, account_id, pem, kind, ca):
        command = c.UploadCaCertificate(account_id, pem, ca=ca, name="pool")
        if account_id not in self.accounts:
            return self._run(command, refused=e.ACCOUNT_NOT_FOUND)
        if not isinstance(ca, bool):
            return self._run(command, refused=e.INVALID_REQUEST)
        if kind == "garbage":
            return self._run(command, refused=e.UNPARSEABLE_CERTIFICATE)
        if kind == "badsig" or (kind == "leaf" and ca):
            return self._run(command, refused=e.CERTIFICATE_REJECTED)
        quota = self.settings.ca_quota[self.accounts[account_id]]
        if quota == 0:
            return self._run(command, refused=e.PLAN_NOT_ENTITLED)
        if self._uploads_of(account_id) >= quota:
            return self._run(command, refused=e.CA_QUOTA_EXCEEDED)
        record = self._ok(command)
        assert (record.account_id, record.ca) == (account_id, ca)
        assert record.id not in self.known_ca_ids, "a new upload must get a new id"
        assert not record.certificates.endswith("\n\n")
        self.cas[record.id] = (account_id, ca)
        self.known_ca_ids.append(record.id)
        return record

    @rule(
        data=st.data(),
        pem=st.sampled_from(PEMS + PEMS[:5]),  # CAs twice as likely
        ca=st.sampled_from([True, True, False, "yes"]),
    )
    def upload(self, data, pem, ca):
        self._upload(self._account_choice(data), pem[0], pem[1], ca)

    @rule(data=st.data(), index=st.integers(0, 2))
    def upload_until_full(self, data, index):
        """Upload one good CA until the account refuses: exercises the 6th upload."""
        account_id = self._account_choice(data, ghost=False)
        for _ in range(7):
            if self._upload(account_id, _CA_PEMS[index], "ca", True) is None:
                break
        else:
            raise AssertionError("seven uploads were all accepted")

    @rule(data=st.data())
    def refused_uploads(self, data):
        """Every kind of upload the store must refuse, whatever the quota says."""
        account_id = self._account_choice(data)
        for pem, kind in PEMS:
            if kind != "ca":
                for ca in (True, False) if kind != "leaf" else (True,):
                    assert self._upload(account_id, pem, kind, ca) is None

    @rule(data=st.data())
    def delete_ca(self, data):
        in_use = sorted({ca for (_, ca), hosts in self.assoc.items() if ca and hosts})
        if in_use and data.draw(st.booleans(), label="an associated ca"):
            ca_id = data.draw(st.sampled_from(in_use), label="ca id")
        else:
            ca_id = self._ca_choice(data)
        owner = self.cas.get(ca_id, (None,))[0]
        if owner is not None and data.draw(st.integers(0, 3), label="other account") != 0:
            account_id = owner
        else:
            account_id = self._account_choice(data)
        command = c.DeleteCaCertificate(account_id, ca_id)
        if account_id not in self.accounts:
            self._run(command, refused=e.ACCOUNT_NOT_FOUND)
        elif ca_id not in self.cas or self.cas[ca_id][0] != account_id:
            self._run(command, refused=e.CERTIFICATE_NOT_FOUND)
        elif any(key[1] == ca_id and hosts for key, hosts in self.assoc.items()):
            self._run(command, refused=e.CERTIFICATE_IN_USE)
        else:
            assert self._ok(command).id == ca_id
            del self.cas[ca_id]

    @rule(data=st.data())
    def clear_associations_then_delete(self, data):
        """The documented way out of CERTIFICATE_IN_USE: clear every zone, then delete."""
        if not self.cas:
            return
        in_use = sorted({ca for _, ca in self.assoc if ca is not None})
        ca_id = data.draw(st.sampled_from(in_use or sorted(self.cas)), label="ca to retire")
        account_id = self.cas[ca_id][0]
        if any(ca == ca_id for _, ca in self.assoc):
            self._run(c.DeleteCaCertificate(account_id, ca_id), refused=e.CERTIFICATE_IN_USE)
        for zone_id, ca in sorted(k for k in self.assoc if k[1] == ca_id):
            self._put(zone_id, ca, [])
        assert self._ok(c.DeleteCaCertificate(account_id, ca_id)).id == ca_id
        del self.cas[ca_id]

    @rule(data=st.data())
    def ca_reads(self, data):
        account_id = self._account_choice(data)
        ca_id = self._ca_choice(data)
        if account_id not in self.accounts:
            for command in (
                c.ListCaCertificates(account_id),
                c.GetCaCertificate(account_id, ca_id),
                c.ListCaAssociations(account_id, ca_id),
            ):
                self._run(command, refused=e.ACCOUNT_NOT_FOUND)
            return
        listed = self._run(c.ListCaCertificates(account_id), read=True)
        assert {r.id for r in listed} == {i for i, (a, _) in self.cas.items() if a == account_id}
        if ca_id not in self.cas or self.cas[ca_id][0] != account_id:
            self._run(c.GetCaCertificate(account_id, ca_id), refused=e.CERTIFICATE_NOT_FOUND)
            self._run(c.ListCaAssociations(account_id, ca_id), refused=e.CERTIFICATE_NOT_FOUND)
            return
        assert self._run(c.GetCaCertificate(account_id, ca_id), read=True).id == ca_id
        found = self._run(c.ListCaAssociations(account_id, ca_id), read=True)
        expected = {z: hosts for (z, ca), hosts in self.assoc.items() if ca == ca_id}
        assert {a.zone_id: a.hostnames for a in found} == expected

    # --- hostname associations ------------------------------------------------------------------

    def _predict_ca(self, zone_id, ca_id) -> int | None:
        if zone_id not in self.zones:
            return e.ZONE_NOT_FOUND
        if ca_id is None:
            return None
        if ca_id not in self.cas or self.cas[ca_id][0] != self.zones[zone_id][0]:
            return e.CERTIFICATE_NOT_FOUND
        if not self.cas[ca_id][1]:
            return e.CERTIFICATE_NOT_CA
        return None

    def _put(self, zone_id, ca_id, hostnames):
        command = c.PutHostnameAssociations(zone_id, hostnames, ca_id)
        refused = self._predict_ca(zone_id, ca_id)
        if refused is not None:
            return self._run(command, refused=refused)
        normal: dict[str, None] = {}
        for hostname in hostnames:
            if hostname in BAD_HOSTNAMES:
                return self._run(command, refused=e.INVALID_HOSTNAME)
            if self._owner(_normal(hostname)) != zone_id:
                return self._run(command, refused=e.HOSTNAME_NOT_IN_ZONE)
            normal[_normal(hostname)] = None
        assert self._ok(command) == tuple(normal)
        if normal:
            self.assoc[(zone_id, ca_id)] = tuple(normal)
        else:
            self.assoc.pop((zone_id, ca_id), None)

    @rule(data=st.data(), managed=st.booleans())
    def put_associations(self, data, managed):
        zone_id = self._zone_choice(data)
        ca_id = None if managed else self._ca_choice(data)
        self._put(zone_id, ca_id, self._hostnames_for(data, zone_id))

    @rule(data=st.data())
    def put_own_ca_in_own_zone(self, data):
        """Aim at success: an uploaded CA, a zone of its account, hostnames of that zone."""
        if not self.cas:
            return
        usable = sorted(i for i, (_, is_ca) in self.cas.items() if is_ca)
        if usable and data.draw(st.integers(0, 3), label="ca false") != 0:
            ca_id = data.draw(st.sampled_from(usable), label="own ca")
        else:  # possibly one uploaded with ca: false, which must be refused
            ca_id = data.draw(st.sampled_from(sorted(self.cas)), label="own upload")
        zones = sorted(z for z, (a, _) in self.zones.items() if a == self.cas[ca_id][0])
        if not zones:
            return
        zone_id = data.draw(st.sampled_from(zones), label="own zone")
        self._put(zone_id, ca_id, self._hostnames_for(data, zone_id))

    @rule(data=st.data(), managed=st.booleans())
    def get_associations(self, data, managed):
        zone_id = self._zone_choice(data)
        ca_id = None if managed else self._ca_choice(data)
        command = c.GetHostnameAssociations(zone_id, ca_id)
        refused = self._predict_ca(zone_id, ca_id)
        if refused is not None:
            self._run(command, refused=refused)
        else:
            assert self._run(command, read=True) == self.assoc.get((zone_id, ca_id), ())

    # --- managed CA client certificates ---------------------------------------------------------

    @rule(
        data=st.data(),
        csr=st.sampled_from(CSRS * 3 + ["garbage csr", CSRS[0].replace("MI", "XX", 1), None]),
        days=st.sampled_from(VALIDITY[:4] * 3 + VALIDITY[4:]),
    )
    def create_client_certificate(self, data, csr, days):
        self._create_client_certificate(self._zone_choice(data), csr, days)

    @rule(data=st.data())
    def create_client_certificates_until_full(self, data):
        """Issue in one zone until the quota refuses: revoked ones must free their slot."""
        zone_id = self._pick(data, sorted(self.zones), "zone", ghost=False)
        for _ in range(self.settings.client_certificate_quota + 1):
            if self._create_client_certificate(zone_id, CSRS[1], 30) is None:
                break
        else:
            raise AssertionError("the client certificate quota never refused")

    def _create_client_certificate(self, zone_id, csr, days):
        command = c.CreateClientCertificate(zone_id, csr, days)
        if zone_id not in self.zones:
            self._run(command, refused=e.ZONE_NOT_FOUND)
        elif not (type(days) is int and 1 <= days <= 36500):
            self._run(command, refused=e.INVALID_VALIDITY)
        elif csr not in CSRS:
            self._run(command, refused=e.INVALID_CSR)
        elif self._holding(zone_id) >= self.settings.client_certificate_quota:
            self._run(command, refused=e.CLIENT_CERTIFICATE_QUOTA)
        else:
            record = self._ok(command)
            assert record.status is Status.ACTIVE and record.zone_id == zone_id
            zone = self.store.zones[zone_id]
            assert record.managed_ca_id == self.store.managed_ca_for(zone).id
            assert record.id not in self.certs
            self.certs[record.id] = (zone_id, Status.ACTIVE)
            return record
        return None

    def _transition(self, data, command_type, source, target, *preferred):
        cert_id = self._cert_choice(data, *preferred)
        own_zone = self.certs.get(cert_id, (None,))[0]
        if own_zone is not None and data.draw(st.integers(0, 3), label="other zone") != 0:
            zone_id = own_zone
        else:
            zone_id = self._zone_choice(data)
        command = command_type(zone_id, cert_id)
        if zone_id not in self.zones:
            self._run(command, refused=e.ZONE_NOT_FOUND)
        elif own_zone != zone_id:
            self._run(command, refused=e.CLIENT_CERTIFICATE_NOT_FOUND)
        elif self.certs[cert_id][1] is not source:
            self._run(command, refused=e.INVALID_STATUS_CHANGE)
        else:
            assert self._ok(command).status is target
            self.certs[cert_id] = (zone_id, target)

    @rule(data=st.data())
    def revoke(self, data):
        self._transition(
            data, c.RevokeClientCertificate, Status.ACTIVE, Status.PENDING_REVOCATION,
            Status.ACTIVE, Status.REVOKED,
        )

    @rule(data=st.data())
    def reactivate(self, data):
        self._transition(
            data, c.ReactivateClientCertificate, Status.PENDING_REVOCATION, Status.ACTIVE,
            Status.PENDING_REVOCATION, Status.REVOKED,
        )

    @rule(
        data=st.data(),
        steps=st.lists(
            st.sampled_from(["revoke", "reactivate", "finalize"]), min_size=1, max_size=4
        ),
    )
    def lifecycle_walk(self, data, steps):
        """Walk one certificate through revoke / reactivate / finalize in its own zone."""
        if not self.certs:
            return
        cert_id = data.draw(st.sampled_from(sorted(self.certs)), label="walked cert")
        zone_id = self.certs[cert_id][0]
        for step in steps:
            status = self.certs[cert_id][1]
            if step == "finalize":
                self._finalize(zone_id)
            elif step == "revoke":
                command = c.RevokeClientCertificate(zone_id, cert_id)
                if status is not Status.ACTIVE:
                    self._run(command, refused=e.INVALID_STATUS_CHANGE)
                else:
                    assert self._ok(command).status is Status.PENDING_REVOCATION
                    self.certs[cert_id] = (zone_id, Status.PENDING_REVOCATION)
            else:
                command = c.ReactivateClientCertificate(zone_id, cert_id)
                if status is not Status.PENDING_REVOCATION:
                    self._run(command, refused=e.INVALID_STATUS_CHANGE)
                else:
                    assert self._ok(command).status is Status.ACTIVE
                    self.certs[cert_id] = (zone_id, Status.ACTIVE)

    @rule(data=st.data(), everywhere=st.booleans())
    def finalize(self, data, everywhere):
        self._finalize(None if everywhere else self._zone_choice(data))

    def _finalize(self, zone_id):
        command = c.FinalizeRevocations(zone_id)
        if zone_id is not None and zone_id not in self.zones:
            self._run(command, refused=e.ZONE_NOT_FOUND)
            return
        pending = sorted(
            i
            for i, (z, s) in self.certs.items()
            if s is Status.PENDING_REVOCATION and zone_id in (None, z)
        )
        done = self._run(command, changes=bool(pending))
        assert sorted(r.id for r in done) == pending
        for cert_id in pending:
            self.certs[cert_id] = (self.certs[cert_id][0], Status.REVOKED)

    @rule(data=st.data(), status=st.sampled_from([None, *Status, "bogus"]))
    def client_certificate_reads(self, data, status):
        zone_id = self._zone_choice(data)
        if zone_id not in self.zones:
            self._run(c.ListClientCertificates(zone_id, status), refused=e.ZONE_NOT_FOUND)
            return
        if status == "bogus":
            self._run(c.ListClientCertificates(zone_id, status), refused=e.INVALID_REQUEST)
            return
        found = self._run(c.ListClientCertificates(zone_id, status), read=True)
        expected = {
            i for i, (z, s) in self.certs.items() if z == zone_id and status in (None, s)
        }
        assert {r.id for r in found} == expected
        cert_id = self._cert_choice(data)
        command = c.GetClientCertificate(zone_id, cert_id)
        if self.certs.get(cert_id, (None,))[0] != zone_id:
            self._run(command, refused=e.CLIENT_CERTIFICATE_NOT_FOUND)
        else:
            assert self._run(command, read=True).status is self.certs[cert_id][1]

    # --- custom rules ---------------------------------------------------------------------------

    @rule(
        data=st.data(),
        specs=st.lists(
            st.tuples(
                st.sampled_from(list(EXPRESSIONS)),
                st.sampled_from(ACTIONS),
            )
            | st.just(None),
            max_size=3,
        ),
    )
    def put_rules(self, data, specs):
        zone_id = self._zone_choice(data)
        rules = [("not a rule" if s is None else Rule(s[0], s[1])) for s in specs]
        command = c.PutCustomRules(zone_id, rules)
        valid = {"log", "block", "skip"}
        if zone_id not in self.zones:
            self._run(command, refused=e.ZONE_NOT_FOUND)
        elif any(s is None or not EXPRESSIONS[s[0]] or s[1] not in valid for s in specs):
            self._run(command, refused=e.INVALID_RULE)
        else:
            stored = self._ok(command)
            assert [(r.expression, r.action.value) for r in stored] == specs
            self.rules[zone_id] = stored

    @rule(data=st.data())
    def get_rules(self, data):
        zone_id = self._zone_choice(data)
        if zone_id not in self.zones:
            self._run(c.GetCustomRules(zone_id), refused=e.ZONE_NOT_FOUND)
        else:
            assert self._run(c.GetCustomRules(zone_id), read=True) == self.rules[zone_id]

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def quotas_hold(self):
        store = self.store
        for account in store.accounts.values():
            uploads = sum(1 for ca in store.cas.values() if ca.account_id == account.id)
            assert uploads <= store.settings.ca_quota[account.plan], account
        for zone in store.zones.values():
            holding = sum(
                1
                for cert in store.client_certificates.values()
                if cert.zone_id == zone.id and cert.status is not Status.REVOKED
            )
            assert holding <= store.settings.client_certificate_quota, zone.name

    @invariant()
    def associations_point_at_live_cas_of_the_zone_account(self):
        store = self.store
        for zone in store.zones.values():
            for ca_id, hostnames in zone.associations.items():
                assert hostnames, "an empty association should be removed"
                assert ca_id in store.cas or ca_id in store.managed_cas, (zone.name, ca_id)
                if ca_id in store.cas:
                    assert store.cas[ca_id].account_id == zone.account_id
                    assert store.cas[ca_id].ca
                else:
                    assert ca_id == store.managed_ca_for(zone).id
                for hostname in hostnames:
                    owner = self._owner(hostname)
                    assert owner == zone.id, f"{hostname} associated in {zone.name}"

    @invariant()
    def store_agrees_with_model(self):
        store = self.store
        assert store.version == self.version
        assert {i: a.plan for i, a in store.accounts.items()} == self.accounts
        assert {i: (z.account_id, z.name) for i, z in store.zones.items()} == self.zones
        assert {i: z for z, i in store.zone_names.items()} == {
            i: n for i, (_, n) in self.zones.items()
        }
        assert {i: (r.account_id, r.ca) for i, r in store.cas.items()} == self.cas
        expected_assoc: dict[str, dict[str, tuple[str, ...]]] = {z: {} for z in self.zones}
        for (zone_id, ca_id), hosts in self.assoc.items():
            if ca_id is None:
                ca_id = store.managed_ca_for(store.zones[zone_id]).id
            expected_assoc[zone_id][ca_id] = hosts
        assert {i: dict(z.associations) for i, z in store.zones.items()} == expected_assoc
        assert {
            i: (r.zone_id, r.status) for i, r in store.client_certificates.items()
        } == self.certs
        assert {i: z.rules for i, z in store.zones.items()} == self.rules

    @invariant()
    def snapshot_is_current_complete_and_isolated(self):
        store, snap = self.store, self.snapshot
        assert snap.version == store.version
        fresh = build_snapshot(store)
        assert set(snap.zones) == set(fresh.zones) == {z.name for z in store.zones.values()}
        for name, part in snap.zones.items():
            other = fresh.zones[name]
            assert part.rules == other.rules
            assert {h: (p.trust.key, p.cas) for h, p in part.hosts.items()} == {
                h: (p.trust.key, p.cas) for h, p in other.hosts.items()
            }, name
        assert snap.revoked == fresh.revoked
        assert set(snap.trust_sets) == set(fresh.trust_sets)
        assert snap == fresh
        # revocations: every non-active certificate's serial, under its managed CA
        expected_revoked: dict[str, set[int]] = {}
        for cert in store.client_certificates.values():
            if cert.status is not Status.ACTIVE:
                expected_revoked.setdefault(cert.managed_ca_id, set()).add(cert.serial)
        assert {k: set(v) for k, v in snap.revoked.items()} == expected_revoked
        # hosts: exactly the model's associations, each trusting only its tenant's CAs
        for zone in store.zones.values():
            part = snap.zones[zone.name]
            assert part.id == zone.id and part.account_id == zone.account_id
            managed_id = store.managed_ca_for(zone).id
            expected_hosts: dict[str, set[str]] = {}
            for (zone_id, ca_id), hosts in self.assoc.items():
                if zone_id == zone.id:
                    for host in hosts:
                        expected_hosts.setdefault(host, set()).add(ca_id or managed_id)
            found_hosts = {h: {ca.ca_id for ca in p.cas} for h, p in part.hosts.items()}
            assert found_hosts == expected_hosts, zone.name
            for hostname, policy in part.hosts.items():
                assert snap.host(hostname) is policy, hostname
                assert policy.zone_id == zone.id and policy.account_id == zone.account_id
                assert policy.trust is snap.trust_sets[policy.trust.key]
                fingerprints = set()
                for ca in policy.cas:
                    fingerprints.update(ca.fingerprints)
                    if ca.managed:
                        assert ca.ca_id == managed_id
                        assert ca.account_id in (zone.account_id, None)
                    else:
                        assert ca.account_id == zone.account_id
                        assert store.cas[ca.ca_id].account_id == zone.account_id
                assert set(policy.trust.key) == fingerprints


# The profile (tests/conftest.py) sets max_examples. Shrinking a failure takes seconds to a
# minute; the explain phase would add minutes of re-runs for little, so it is left out.
StoreMachine.TestCase.settings = settings(
    stateful_step_count=50,
    deadline=None,
    report_multiple_bugs=False,
    phases=[phase for phase in Phase if phase is not Phase.explain],
)
test_store_state_machine = StoreMachine.TestCase

