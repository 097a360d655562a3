"""The scenario model: what a rollout rehearsal says, as frozen attrs classes.

Every key of a scenario file maps to a field here (docs/scenarios.md documents them all).
Values are checked on construction, so a `Scenario` that exists is one the runner can run; the
loader adds the checks that span sections (names that must refer to something).
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

from edge import http
from edge.control.records import Action, ManagedCaScope, Plan
from edge.control.store import MAX_VALIDITY_DAYS
from edge.pki.issuer import KEY_TYPES
from edge.pki.profiles import Profile



FIRST_PHASE = "start"  # the phase a run begins in, unless a timeline entry at 0s opens another


class Offset(dt.timedelta):
    """A signed time relative to the scenario's start ("-30d", "+2h")."""


# Validators name their field first ("clients: ..."): the loader turns that into a key path.
def _positive(instance, attribute, value) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: expected a number above 0, got {value!r}")


def _not_negative(instance, attribute, value) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}: expected a number of 0 or more, got {value!r}")


def _non_empty(instance, attribute, value) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: expected at least one entry")


def _request_paths(instance, attribute, value) -> None:
    _non_empty(instance, attribute, value)
    for path in value:
        if not path.startswith("/"):
            raise ValueError(f"{attribute.name}: expected paths starting with '/', got {path!r}")
        try:
            http.check_target(path)
        except ValueError as exc:
            raise ValueError(f"{attribute.name}: {exc}") from None


def _host_header(instance, attribute, value) -> None:
    if value is not None:
        try:
            http.check_header("host", value)
        except ValueError:
            raise ValueError(f"{attribute.name}: not a valid Host header value: {value!r}") from None


def _validity_days(instance, attribute, value) -> None:
    if not 1 <= value <= MAX_VALIDITY_DAYS:
        raise ValueError(f"{attribute.name}: expected 1 to {MAX_VALIDITY_DAYS} days, got {value!r}")


def _key_type(instance, attribute, value) -> None:
    if value not in KEY_TYPES:
        choices = ", ".join(map(repr, KEY_TYPES))
        raise ValueError(f"{attribute.name}: expected one of {choices}, got {value!r}")


def _positive_duration(instance, attribute, value: dt.timedelta) -> None:
    if value.total_seconds() <= 0:
        raise ValueError(f"{attribute.name}: expected a duration above 0")


@attrs.frozen
class Meta:
    name: str
    start: dt.datetime
    duration: dt.timedelta = attrs.field(validator=_positive_duration)
    description: str = ""
    seed: int = 0


@attrs.frozen
class CaSpec:
    """A CA of the scenario's PKI: generated (subject, key, validity) or loaded (pem)."""

    subject: dict[str, str] | None = None
    pem: str | None = None  # a file next to the scenario
    key_pem: str | None = None  # its private key, only to issue fleet certificates from it
    parent: str | None = None  # another CA of the pki section: this one is its intermediate
    key: str = attrs.field(default="ec", validator=_key_type)
    valid_from: Offset = Offset(days=-3650)  # relative to meta.start
    valid_until: Offset = Offset(days=3650)
    path_length: int | None = None

    def __attrs_post_init__(self) -> None:
        if (self.subject is None) == (self.pem is None):
            raise ValueError("expected exactly one of `subject` (generate) or `pem` (load)")
        if self.pem is not None and self.parent is not None:
            raise ValueError("parent: applies to generated CAs only, not to `pem`")
        if self.key_pem is not None and self.pem is None:
            raise ValueError("key_pem: goes with `pem`; a generated CA has its own key")
        if self.valid_from >= self.valid_until:
            raise ValueError("valid_until: expected a time after valid_from")


@attrs.frozen
class Tenant:
    name: str
    zones: tuple[str, ...] = attrs.field(validator=_non_empty)
    plan: Plan = Plan.ENTERPRISE


@attrs.frozen
class Propagation:
    """Delay from the control plane to each node, uniform between min and max (seeded)."""

    min: dt.timedelta = dt.timedelta(0)
    max: dt.timedelta = dt.timedelta(0)

    def __attrs_post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError("max: expected a delay of at least min")


@attrs.frozen
class EdgeSpec:
    nodes: int = attrs.field(default=1, validator=_positive)
    propagation: Propagation = Propagation()
    handshake_timeout: dt.timedelta = dt.timedelta(seconds=10)
    request_timeout: dt.timedelta = dt.timedelta(seconds=30)  # a node waits this long for a request
    max_chain_depth: int = attrs.field(default=4, validator=_not_negative)


class CertSource(str, enum.Enum):
    PROFILE = "profile"  # generated from a profile against a CA of the pki section
    MANAGED = "managed"  # issued by the managed CA through the control plane at set-up


@attrs.frozen
class CertSpec:
    profile: Profile = Profile.VALID
    issuer: str | None = None  # a CA of the pki section (profile certificates)
    source: CertSource = CertSource.PROFILE
    zone: str | None = None  # managed certificates: the zone they are issued in
    validity_days: int = attrs.field(default=365, validator=_validity_days)
    key: str = attrs.field(default="ec", validator=_key_type)
    valid_from: Offset | None = None  # relative to meta.start; overrides the profile's
    valid_until: Offset | None = None
    depth: int = attrs.field(default=6, validator=_positive)  # too_deep only
    send_chain: bool = True  # False: the client sends its leaf without the intermediates

    def __attrs_post_init__(self) -> None:
        if self.source is CertSource.MANAGED:
            if self.zone is None:
                raise ValueError("zone: a managed certificate needs the zone it is issued in")
        elif self.profile is not Profile.NONE and self.issuer is None:
            raise ValueError(f"issuer: profile {self.profile.value!r} needs a CA of [pki]")
        if (self.valid_from, self.valid_until) != (None, None) and self.profile is not Profile.VALID:
            raise ValueError("valid_from: a validity window goes with profile 'valid' only")


@attrs.frozen
class FleetSpec:
    name: str
    hostname: str  # the SNI the clients send
    host: str | None = attrs.field(  # the Host header, when it differs from the SNI
        default=None, validator=_host_header
    )
    clients: int = attrs.field(default=1, validator=_positive)
    interval: dt.timedelta = attrs.field(  # between one client's connections
        default=dt.timedelta(minutes=1), validator=_positive_duration
    )
    paths: tuple[str, ...] = attrs.field(default=("/",), validator=_request_paths)
    requests_per_connection: int = attrs.field(default=1, validator=_positive)
    cert: CertSpec | None = None  # None: no client certificate at all
    nodes: tuple[str, ...] = ()  # node names to use; empty: all, in turn


@attrs.frozen
class RuleSpec:
    expression: str
    action: Action
    description: str = ""
    enabled: bool = True


class ActionKind(str, enum.Enum):
    UPLOAD_CA = "upload_ca"
    ASSOCIATE = "associate"
    DEPLOY_RULES = "deploy_rules"
    DELETE_CA = "delete_ca"
    REVOKE = "revoke"
    REACTIVATE = "reactivate"
    PARTITION = "partition"
    HEAL = "heal"
    RESTART_NODE = "restart_node"
    PHASE = "phase"


# The fields each action needs; the loader reports a missing one by its key path.
REQUIRED: dict[ActionKind, tuple[str, ...]] = {
    ActionKind.UPLOAD_CA: ("tenant", "ca"),
    ActionKind.ASSOCIATE: ("zone", "hostnames"),
    ActionKind.DEPLOY_RULES: ("zone", "rules"),
    ActionKind.DELETE_CA: ("tenant", "ca"),
    ActionKind.REVOKE: ("fleet",),
    ActionKind.REACTIVATE: ("fleet",),
    ActionKind.PARTITION: ("node",),
    ActionKind.HEAL: ("node",),
    ActionKind.RESTART_NODE: ("node",),
    ActionKind.PHASE: ("phase",),
}


@attrs.frozen
class TimelineEntry:
    """At `at` after the start, one control-plane or topology action; `phase` opens a phase."""

    at: dt.timedelta
    action: ActionKind
    phase: str | None = None
    tenant: str | None = None
    ca: str | None = None  # upload_ca: a CA of [pki]; associate/delete_ca: an upload's name
    name: str | None = None  # upload_ca: the name later actions use (default: `ca`)
    zone: str | None = None
    hostnames: tuple[str, ...] | None = None
    rules: tuple[RuleSpec, ...] | None = None
    fleet: str | None = None
    node: str | None = None

    def __attrs_post_init__(self) -> None:
        missing = [key for key in REQUIRED[self.action] if getattr(self, key) is None]
        if missing:
            raise ValueError(f"action {self.action.value!r} needs {', '.join(missing)}")


class Metric(str, enum.Enum):
    CONNECTIONS = "connections"
    REQUESTS = "requests"
    VERIFIED = "verified"  # requests on connections whose certificate verified (and not revoked)
    BLOCKED = "blocked"
    WOULD_BLOCK = "would_block"
    LOGGED = "logged"
    FAILED_HANDSHAKES = "failed_handshakes"
    BLOCKED_RATIO = "blocked_ratio"  # of requests
    WOULD_BLOCK_RATIO = "would_block_ratio"
    VERIFIED_RATIO = "verified_ratio"


class Op(str, enum.Enum):
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


@attrs.frozen
class Expectation:
    """`metric op value` over the matching requests, e.g. fleet legacy blocked == 0 before enforce."""

    metric: Metric
    op: Op
    value: float
    description: str = ""
    fleet: str | None = None
    hostname: str | None = None
    reason: str | None = None
    node: str | None = None
    phase: str | None = None  # only during this phase
    before: str | None = None  # only before this phase starts
    after: str | None = None  # only from this phase's start on

    def __attrs_post_init__(self) -> None:
        if sum(x is not None for x in (self.phase, self.before, self.after)) > 1:
            raise ValueError("expected at most one of phase, before, after")


@attrs.frozen
class RunSettings:
    managed_ca_scope: ManagedCaScope = ManagedCaScope.ACCOUNT
    fail_on_rejected_action: bool = False


def _at_least_one(instance, attribute, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name}: expected at least 1, got {value}")


def _non_empty_tokens(instance, attribute, value: tuple[str, ...]) -> None:
    if not all(value):
        raise ValueError(f"{attribute.name}: an empty token would let anyone in")


@attrs.frozen
class ServeSpec:
    """What `edge serve` takes from a file; its command-line options win over these. Paths are
    relative to the file."""

    listen: str | None = None  # HOST:PORT of the mTLS port
    api: str | None = None  # HOST:PORT of the control-plane API; off unless given
    tokens: tuple[str, ...] = attrs.field(default=(), validator=_non_empty_tokens)
    events: str | None = None
    server_ca_out: str | None = None
    workers: int = attrs.field(default=1, validator=_at_least_one)
    allow_remote: bool = False


@attrs.frozen
class Scenario:
    meta: Meta
    tenants: tuple[Tenant, ...] = attrs.field(validator=_non_empty)
    pki: dict[str, CaSpec] = attrs.field(factory=dict)
    edge: EdgeSpec = EdgeSpec()
    fleets: tuple[FleetSpec, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()
    expect: tuple[Expectation, ...] = ()
    settings: RunSettings = RunSettings()
    serve: ServeSpec = ServeSpec()  # only `edge serve` reads it

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(f"pop-{index + 1}" for index in range(self.edge.nodes))
