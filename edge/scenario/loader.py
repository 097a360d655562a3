"""Load a scenario file: TOML in, a checked `Scenario` out, or one error naming every problem.

Structuring goes through cattrs, so a wrong type or value is reported with its key path
(`fleets[2].cert.issuer`); then the cross-references are checked (a fleet's issuer must be a CA
of [pki], an action's zone one of the tenants' zones, ...). Nothing runs before all of it holds.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import tomllib
import typing
from pathlib import Path

import attrs
import cattrs
import cattrs.gen
from cattrs.errors import IterableValidationError, IterableValidationNote

from edge.rules import RuleSyntaxError, compile_rules
from edge.scenario import model as m
from edge.events import TlsOutcome
from edge.node.reasons import Reason
from edge.scenario.durations import format_duration, parse_duration
from edge.scenario.model import FIRST_PHASE


class ScenarioError(ValueError):
    """The scenario cannot run; `problems` lists each as `path: what was expected`."""

    def __init__(self, source: str, problems: list[str], *, what: str = "scenario") -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid {what}\n" + "\n".join(f"  {p}" for p in problems))


class _Invalid(ValueError):
    """A value error whose text is fit to show as is."""


def _strict(kind: type, name: str):
    def hook(value, _type):
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise _Invalid(f"expected {name}, got {value!r}")
        return value

    return hook


def _number(value, _type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"expected a number, got {value!r}")
    return float(value)


def _moment(value, _type) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise _Invalid("expected a date-time with a time zone, e.g. 2026-06-01T00:00:00Z")
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    raise _Invalid(f"expected a TOML date or date-time (2026-06-01T00:00:00Z), got {value!r}")


def _duration(value, _type) -> dt.timedelta:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise _Invalid(str(err)) from None


def _offset(value, _type) -> m.Offset:
    try:
        return m.Offset(seconds=parse_duration(value, signed=True).total_seconds())
    except ValueError as err:
        raise _Invalid(str(err)) from None


def _subject(value, _type) -> dict[str, str]:
    if not isinstance(value, dict) or not value:
        raise _Invalid('expected a table of name parts, e.g. { CN = "Corp Root", O = "Corp" }')
    for key, part in value.items():
        if not isinstance(part, str):
            raise _Invalid(f"{key}: expected a string, got {part!r}")
    return dict(value)


def _enum_types() -> set[type]:
    """Every Enum a scenario field can hold (the classes are str subclasses too, so each needs
    its own hook or the str hook would take it)."""
    found, seen = set(), set()

    def walk(kind) -> None:
        for arg in typing.get_args(kind):
            walk(arg)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            found.add(kind)
        elif attrs.has(kind) and kind not in seen:
            seen.add(kind)
            for hint in typing.get_type_hints(kind).values():
                walk(hint)

    walk(m.Scenario)
    return found


def _enum(value, kind: type[enum.Enum]):
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise _Invalid(f"expected one of {choices}, got {value!r}") from None


def _converter() -> cattrs.Converter:
    """Strict hooks: no silent str(5), int("3") or True as 1 the way cattrs would by default."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    hooks = {
        str: _strict(str, "a string"),
        int: _strict(int, "a whole number"),
        bool: _strict(bool, "true or false"),
        float: _number,
        dt.datetime: _moment,
        dt.timedelta: _duration,
        m.Offset: _offset,
    }
    for kind, hook in hooks.items():
        converter.register_structure_hook(kind, hook)
    for kind in _enum_types():
        converter.register_structure_hook(kind, _enum)
    converter.register_structure_hook_func(lambda t: t == dict[str, str], _subject)
    converter.register_structure_hook_factory(
        lambda t: typing.get_origin(t) is tuple, lambda t: _tuple_hook(converter, t)
    )
    converter.register_structure_hook_factory(
        lambda t: typing.get_origin(t) is dict and t != dict[str, str],
        lambda t: _table_hook(converter, t),
    )
    converter.register_structure_hook_factory(attrs.has, lambda t: _class_hook(converter, t))
    return converter


def _structure_each(converter: cattrs.Converter, pairs, inner, kind) -> list:
    """Structure each (index or key, item); report every failure with where it was."""
    values, errors = [], []
    for where, item in pairs:
        try:
            values.append(converter.structure(item, inner))
        except Exception as exc:  # noqa: BLE001 - collected with its place, reported below
            exc.add_note(IterableValidationNote(f"@ {where!r}", where, inner))
            errors.append(exc)
    if errors:
        raise IterableValidationError(f"While structuring {kind!r}", errors, kind)
    return values


def _tuple_hook(converter: cattrs.Converter, kind):
    """A TOML array only (a string must not become a tuple of characters)."""
    inner = typing.get_args(kind)[0]

    def hook(value, _type):
        if not isinstance(value, list):
            raise _Invalid(f"expected a list, got {value!r}")
        return tuple(_structure_each(converter, enumerate(value), inner, kind))

    return hook


def _table_hook(converter: cattrs.Converter, kind):
    """A TOML table only, keyed by name."""
    inner = typing.get_args(kind)[1]

    def hook(value, _type):
        if not isinstance(value, dict):
            raise _Invalid(f"expected a table, got {value!r}")
        return dict(zip(value, _structure_each(converter, value.items(), inner, kind)))

    return hook


def _class_hook(converter: cattrs.Converter, kind):
    """A TOML table for an attrs class: anything else is named as such, not as an internal error."""
    default = cattrs.gen.make_dict_structure_fn(kind, converter, _cattrs_forbid_extra_keys=True)

    def hook(value, _type):
        if not isinstance(value, dict):
            raise _Invalid(f"expected a table, got {value!r}")
        return default(value, _type)

    return hook


_CONVERTER = _converter()


def _message(exc: BaseException, type_) -> str:
    if isinstance(exc, KeyError):
        return "required key missing"
    if isinstance(exc, ValueError) and str(exc):
        return str(exc)
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown key(s): {', '.join(sorted(exc.extra_fields))}"
    return cattrs.v.format_exception(exc, type_)


def _structure(data: dict, source: str) -> m.Scenario:
    try:
        return _CONVERTER.structure(data, m.Scenario)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            lines = cattrs.transform_error(exc, path="", format_exception=_message)
            problems = [_path_first(line) for line in lines]
        else:
            problems = [str(exc)]
        raise ScenarioError(source, problems) from None


def _path_first(line: str) -> str:
    """cattrs says `what @ .a['b'].c`; a reader wants `a.b.c: what` (plus a validator's field)."""
    what, _, where = line.rpartition(" @ ")
    where = re.sub(r"\['([^']*)'\]", r".\1", where).lstrip(".")
    field = re.match(r"^(\w+): ", what)
    if field:
        where, what = f"{where}.{field[1]}" if where else field[1], what[field.end():]
    return f"{where or '(top level)'}: {what}"


def _references(scenario: m.Scenario) -> list[str]:
    """Names that must point at something declared elsewhere in the file."""
    problems = []
    cas = set(scenario.pki)
    tenants = {t.name for t in scenario.tenants}
    zones = {zone for t in scenario.tenants for zone in t.zones}
    fleets = {f.name for f in scenario.fleets}
    nodes = set(scenario.node_names)
    phases = {e.phase for e in scenario.timeline if e.phase}
    if not any(e.phase and e.at.total_seconds() == 0 for e in scenario.timeline):
        phases.add(FIRST_PHASE)  # unless a phase opened at 0s replaces it
    hosts = {(f.host or f.hostname).lower() for f in scenario.fleets}
    for name, spec in scenario.pki.items():
        problems.extend(_parent_problems(scenario, name, spec))
    if len(tenants) != len(scenario.tenants):
        problems.append("tenants: names must be unique")
    all_zones = [zone for t in scenario.tenants for zone in t.zones]
    for zone in sorted({z for z in all_zones if all_zones.count(z) > 1}):
        problems.append(f"tenants: zone {zone!r} is listed more than once (a zone has one owner)")
    if len(fleets) != len(scenario.fleets):
        problems.append("fleets: names must be unique")
    for i, fleet in enumerate(scenario.fleets):
        cert = fleet.cert
        if cert is not None and cert.issuer is not None and cert.issuer not in cas:
            problems.append(f"fleets[{i}].cert.issuer: no CA named {cert.issuer!r} in [pki]")
        elif cert is not None and cert.issuer is not None:
            issuer = scenario.pki[cert.issuer]
            if issuer.pem is not None and issuer.key_pem is None:
                problems.append(
                    f"fleets[{i}].cert.issuer: CA {cert.issuer!r} is loaded without key_pem, "
                    "so no client certificate can be issued from it"
                )
        if cert is not None and cert.zone is not None and cert.zone not in zones:
            problems.append(f"fleets[{i}].cert.zone: no tenant has zone {cert.zone!r}")
        for node in fleet.nodes:
            if node not in nodes:
                problems.append(f"fleets[{i}].nodes: no node {node!r} (nodes are {_names(nodes)})")
    uploads: set[str] = set()
    for i, entry in enumerate(sorted(scenario.timeline, key=lambda e: e.at)):
        where = f"timeline[{scenario.timeline.index(entry)}]"
        if entry.at >= scenario.meta.duration:
            problems.append(
                f"{where}.at: {format_duration(entry.at)} is not before the end of the run "
                f"(meta.duration {format_duration(scenario.meta.duration)})"
            )
        if entry.tenant is not None and entry.tenant not in tenants:
            problems.append(f"{where}.tenant: no tenant named {entry.tenant!r}")
        if entry.zone is not None and entry.zone not in zones:
            problems.append(f"{where}.zone: no tenant has zone {entry.zone!r}")
        if entry.fleet is not None and entry.fleet not in fleets:
            problems.append(f"{where}.fleet: no fleet named {entry.fleet!r}")
        if entry.node is not None and entry.node not in nodes:
            problems.append(f"{where}.node: no node {entry.node!r} (nodes are {_names(nodes)})")
        if entry.action is m.ActionKind.UPLOAD_CA:
            if entry.ca not in cas:
                problems.append(f"{where}.ca: no CA named {entry.ca!r} in [pki]")
            uploads.add(entry.name or entry.ca)
        elif entry.action is m.ActionKind.DEPLOY_RULES:
            try:
                compile_rules(entry.rules)
            except RuleSyntaxError as err:
                problems.append(f"{where}.{err}")
        elif entry.action is m.ActionKind.DELETE_CA and entry.ca == "managed":
            problems.append(f"{where}.ca: the managed CA cannot be deleted, only uploads")
        elif entry.action in (m.ActionKind.ASSOCIATE, m.ActionKind.DELETE_CA):
            if entry.ca not in (None, "managed") and entry.ca not in uploads:
                problems.append(
                    f"{where}.ca: {entry.ca!r} is not uploaded by an earlier upload_ca "
                    "(use its name, or \"managed\" for the managed CA)"
                )
    for i, expectation in enumerate(scenario.expect):
        for key in ("phase", "before", "after"):
            value = getattr(expectation, key)
            if value is not None and value not in phases:
                problems.append(f"expect[{i}].{key}: no timeline entry opens phase {value!r}")
        if expectation.fleet is not None and expectation.fleet not in fleets:
            problems.append(f"expect[{i}].fleet: no fleet named {expectation.fleet!r}")
        if expectation.reason is not None and expectation.reason not in REASONS:
            problems.append(
                f"expect[{i}].reason: expected one of {', '.join(sorted(REASONS))}, "
                f"got {expectation.reason!r}"
            )
        if expectation.hostname is not None and expectation.hostname not in hosts:
            problems.append(
                f"expect[{i}].hostname: no fleet sends requests to {expectation.hostname!r} "
                f"(they go to {_names(hosts)})"
            )
        if expectation.node is not None and expectation.node not in nodes:
            problems.append(
                f"expect[{i}].node: no node {expectation.node!r} (nodes are {_names(nodes)})"
            )
    return problems


def _parent_problems(scenario: m.Scenario, name: str, spec: m.CaSpec) -> list[str]:
    """A parent must exist, be able to sign (a generated CA, or a loaded one with its key) and
    not lead back to the CA itself."""
    if spec.parent is None:
        return []
    where = f"pki.{name}.parent"
    parent = scenario.pki.get(spec.parent)
    if parent is None:
        return [f"{where}: no CA named {spec.parent!r} in [pki]"]
    if parent.pem is not None and parent.key_pem is None:
        return [f"{where}: CA {spec.parent!r} is loaded without key_pem and cannot sign"]
    seen, current = {name}, spec.parent
    while current is not None:
        if current in seen:
            return [f"{where}: the parents of {name!r} lead back to {current!r} (a cycle)"]
        seen.add(current)
        current = scenario.pki[current].parent if current in scenario.pki else None
    return []


# What `expect.reason` can match: verdict reasons, and TLS outcomes for failed handshakes.
REASONS = frozenset(r.value for r in Reason) | frozenset(o.value for o in TlsOutcome)


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names))


def parse(text: str, *, source: str = "<scenario>", serving: bool = False) -> m.Scenario:
    """A checked scenario from TOML text; ScenarioError lists every problem found.

    `serving`: read as `edge serve` does, where [meta] and [[tenants]] may be left out (a file
    with only a [serve] table is a fine configuration): they default to SERVE_DEFAULTS.
    """
    try:
        data = tomllib.loads(text)
        if serving:
            data = {**serve_defaults(), **data}
        scenario = _structure(data, source)
        problems = _references(scenario)
    except tomllib.TOMLDecodeError as err:
        problems = [f"not valid TOML: {err}"]
    except ScenarioError as err:
        problems = err.problems
    if problems:
        raise ScenarioError(source, problems, what=_kind(serving))
    return scenario


def _kind(serving: bool) -> str:
    return "file for edge serve" if serving else "scenario"


def serve_defaults() -> dict:
    """What `edge serve` starts with when its file (or no file) leaves them out: one Enterprise
    account with the zone example.com, and certificates valid from now."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return {
        "meta": {"name": "edge serve", "start": now, "duration": "1h"},
        "tenants": [{"name": "edge", "zones": ["example.com"]}],
    }


def load(path: str | Path, *, serving: bool = False) -> tuple[m.Scenario, Path]:
    """The scenario in `path`, and the folder its relative file names (pem = ...) start from."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ScenarioError(str(path), [f"cannot read the file: {err}"],
                            what=_kind(serving)) from None
    scenario = parse(text, source=str(path), serving=serving)
    missing = [
        f"pki.{name}.{key}: no file {getattr(spec, key)!r} next to the scenario"
        for name, spec in scenario.pki.items()
        for key in ("pem", "key_pem")
        if getattr(spec, key) is not None and not (path.parent / getattr(spec, key)).is_file()
    ]
    if missing:
        raise ScenarioError(str(path), missing, what=_kind(serving))
    return scenario, path.parent
