"""Hypothesis strategies for client-certificate chains, for `edge fuzz` and for your own tests.

    from hypothesis import given
    from edge.fuzz import strategies as cs

    @given(cs.chains())
    def test_my_verifier_agrees_with_the_edge(case):
        ...  # case.anchors, case.leaf, case.leaf_key, case.intermediates, case.at, case.expected

Every example is a `Case` (edge.fuzz.chains) built from a `ChainSpec`: first the STRUCTURE is
drawn (how many CAs above the leaf, the key types, which knobs deviate from a valid chain), then
the KNOBS (the value of each deviation). Every list starts with its valid default, so Hypothesis
shrinks a failure toward a short chain with few, simple deviations: the failing example prints
as one line such as `ChainSpec(depth=2, deviations=(('leaf.validity', 'na_eq_t'),))`.

What can deviate (edge.fuzz.chains has the exact values):
- chain: another tenant's CA as issuer (other names, or byte-for-byte the same names), a signer
  with the issuer's name and another key, a self-signed leaf; intermediates sent none / missing /
  duplicated / reversed / with the root / with an unrelated CA / with a same-name other-key decoy;
  anchors: the top intermediate instead of the root, or a second same-DN CA of another tenant;
- every certificate: validity relative to the validation time, exact boundaries and +-1 s
  included; BasicConstraints absent / cA false / cA true / path lengths; KeyUsage; EKU (none,
  clientAuth, serverAuth only, any); AKI absent or mismatched; SKI absent; DNS name constraints
  (permitted / excluded, matching the leaf or not) on a CA or on the leaf;
- the leaf: SAN absent / email / another DNS name; a hostname-like CN.
Keys are EC P-256, P-384, RSA 2048 and Ed25519 from a fixed pool (`warm_pool()` makes them all
at once); certificates are cached, so an example costs about one signature.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from hypothesis import strategies as st

from edge.fuzz.chains import (
    DEFAULT_AT,
    KEY_TYPES,
    MAX_DEPTH,
    Case,
    ChainSpec,
    applicable,
    build_case,
    knob_values,
    targets,
    warm_pool,
)
from edge.pki.issuer import KeyType

__all__ = [
    "chain_specs",
    "chains",
    "valid_chains",
    "single_deviation_chains",
    "foreign_chains",
    "warm_pool",
    "Case",
    "ChainSpec",
]

FOREIGN_ISSUERS = ("other_tenant_same_dn", "other_tenant", "impostor")


@st.composite
def chain_specs(
    draw,
    *,
    max_depth: int = MAX_DEPTH,
    min_deviations: int = 0,
    max_deviations: int = 3,
    key_types: Iterable[KeyType] = KEY_TYPES,
    force: Mapping[str, Iterable[str]] | None = None,
    exclude: Iterable[str] = (),
    at: dt.datetime = DEFAULT_AT,
) -> ChainSpec:
    """A `ChainSpec`: depth 1..`max_depth` CAs above the leaf, key types for the root, the
    intermediates and the leaf, and `min_deviations`..`max_deviations` deviations.

    `force` maps a knob (`"chain.issuer"`) to the values it must take one of, on top of the
    drawn deviations; `exclude` names knobs that never deviate (`"leaf.san"`).
    """
    force = {k: tuple(v) for k, v in (force or {}).items()}
    key_types = tuple(key_types)
    # structure: depth, keys, which knobs deviate
    depth = draw(st.integers(1, max_depth), label="depth")
    # the first key type everywhere half of the time, so other knobs get their turn
    if len(key_types) > 1 and draw(st.booleans(), label="mixed key types"):
        keys = tuple(draw(st.sampled_from(key_types)) for _ in ("root", "int", "leaf"))
    else:
        keys = (key_types[0],) * 3
    excluded = set(exclude) | set(force)
    open_targets = [
        t for t in targets(depth)
        if t not in excluded and any(applicable(depth, t, v) for v in knob_values(t))
    ]
    chosen = draw(st.lists(
        st.sampled_from(open_targets), min_size=min_deviations,
        max_size=max(min_deviations, max_deviations), unique=True,
    ), label="deviating knobs")
    # knobs: one value per deviation, the simplest first
    deviations = []
    for target in [*force, *chosen]:
        allowed = force.get(target, knob_values(target))
        values = [v for v in allowed if applicable(depth, target, v)]
        if values:
            deviations.append((target, draw(st.sampled_from(values), label=target)))
    order = {t: i for i, t in enumerate(targets(depth))}
    deviations.sort(key=lambda d: order[d[0]])
    return ChainSpec(depth=depth, keys=keys, deviations=tuple(deviations), at=at)


def chains(**options) -> st.SearchStrategy[Case]:
    """Cases built from `chain_specs(**options)`."""
    return chain_specs(**options).map(build_case)


def valid_chains(*, max_depth: int = MAX_DEPTH, **options) -> st.SearchStrategy[Case]:
    """Chains every verifier accepts (no deviation; EC and RSA keys, pyca refuses Ed25519 CAs)."""
    options.setdefault("key_types", ("ec", "ec384", "rsa"))
    return chains(max_depth=max_depth, max_deviations=0, **options)


def single_deviation_chains(**options) -> st.SearchStrategy[Case]:
    """Chains with exactly one deviation: the generator's model knows most of their verdicts."""
    return chains(min_deviations=1, max_deviations=1, **options)


def foreign_chains(**options) -> st.SearchStrategy[Case]:
    """Chains issued under a key the anchors do not hold: another tenant's CA (often with the
    very same names), or a signer with the issuer's name and another key. Never verifiable."""
    force = dict(options.pop("force", {}))
    force.setdefault("chain.issuer", FOREIGN_ISSUERS)
    return chains(force=force, **options).filter(lambda case: case.foreign)
