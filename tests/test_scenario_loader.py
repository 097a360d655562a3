"""The scenario loader's errors: each names the key path and says what was expected.

Scenario texts are built from a small valid head (`[meta]` and one tenant) plus the tables a test
needs. `problems()` returns the loader's list of `path: what` lines, so each test can assert the
exact line.
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path

import pytest

from edge.control.records import Action, ManagedCaScope, Plan
from edge.pki.profiles import Profile
from edge.scenario import model as m
from edge.scenario.loader import ScenarioError, load, parse

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))

META = """\
[meta]
name = "test"
start = 2026-06-01T08:00:00Z
duration = "1h"
"""
TENANT = """\
[[tenants]]
name = "acme"
zones = ["acme.test"]
"""
HEAD = META + TENANT
ROOT_CA = '[pki.root]\nsubject = { CN = "Root" }\n'
# How type/value errors spell the path of [pki.root] today (see test_pki_paths_use_one_spelling).
PKI_ROOT = "pki.root"
FLEET = '[[fleets]]\nname = "app"\nhostname = "api.acme.test"\n'
UPLOAD = '[[timeline]]\nat = "1m"\naction = "upload_ca"\ntenant = "acme"\nca = "root"\n'


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse(text)
    return caught.value.problems


def choices(kind: type[enum.Enum]) -> str:
    return ", ".join(repr(member.value) for member in kind)


# --- a valid scenario, and the shipped ones ---------------------------------------------------


def test_minimal_scenario_loads_with_defaults():
    scenario = parse(HEAD)
    assert scenario.meta.seed == 0
    assert scenario.meta.duration == dt.timedelta(hours=1)
    assert scenario.tenants[0].plan is Plan.ENTERPRISE
    assert scenario.node_names == ("pop-1",)
    assert scenario.settings.managed_ca_scope is ManagedCaScope.ACCOUNT
    assert (scenario.fleets, scenario.timeline, scenario.expect) == ((), (), ())


def test_shipped_scenarios_exist():
    assert SHIPPED, f"no scenario files in {ROOT / 'scenarios'}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_loads(path):
    scenario, base = load(path)
    assert base == path.parent
    assert scenario.meta.name


# --- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n" + HEAD, "(top level): unknown key(s): colour"),
        (HEAD + "[meta2]\nx = 1\n", "(top level): unknown key(s): meta2"),
        (HEAD.replace('duration = "1h"', 'duration = "1h"\ncolour = "blue"'),
         "meta: unknown key(s): colour"),
        (HEAD.replace('zones = ["acme.test"]', 'zones = ["acme.test"]\nregion = "eu"'),
         "tenants[0]: unknown key(s): region"),
        (HEAD + '[edge]\nnode = 3\n', "edge: unknown key(s): node"),
        (HEAD + '[edge]\npropagation = { min = "1s", mean = "2s" }\n',
         "edge.propagation: unknown key(s): mean"),
        (HEAD + ROOT_CA + FLEET + 'cert = { issuer = "root", profil = "valid" }\n',
         "fleets[0].cert: unknown key(s): profil"),
        (HEAD + FLEET + "colour = 1\nsize = 2\n", "fleets[0]: unknown key(s): colour, size"),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "phase"\nphase = "p"\nwhen = 1\n',
         "timeline[0]: unknown key(s): when"),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "deploy_rules"\nzone = "acme.test"\n'
         'rules = [{ expression = "true", action = "block", when = "now" }]\n',
         "timeline[0].rules[0]: unknown key(s): when"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nwindow = "log"\n',
         "expect[0]: unknown key(s): window"),
        (HEAD + "[settings]\nverbose = true\n", "settings: unknown key(s): verbose"),
    ],
)
def test_unknown_keys(text, expected):
    assert problems(text) == [expected]


def test_unknown_key_in_pki_names_the_key():
    [line] = problems(HEAD + ROOT_CA + "bogus = 1\n")
    assert line.endswith(": unknown key(s): bogus")


def test_pki_paths_use_one_spelling():
    assert problems(HEAD + ROOT_CA + 'key = "dsa"\n') == [
        f"pki.root.key: expected one of {', '.join(map(repr, m.KEY_TYPES))}, got 'dsa'"
    ]


# --- wrong types ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + FLEET + "interval = true\n",
         'fleets[0].interval: expected a duration like "90s", "15m", "2h" or "3d", got True'),
        (HEAD.replace("start = 2026-06-01T08:00:00Z", 'start = "2026-06-01T08:00:00Z"'),
         "meta.start: expected a TOML date or date-time (2026-06-01T00:00:00Z), "
         "got '2026-06-01T08:00:00Z'"),
        (HEAD.replace("start = 2026-06-01T08:00:00Z", "start = 08:00:00"),
         "meta.start: expected a TOML date or date-time (2026-06-01T00:00:00Z), "
         "got datetime.time(8, 0)"),
        (HEAD + '[pki.root]\nsubject = "CN=Root"\n',
         PKI_ROOT + ".subject: expected a table of name parts, "
         'e.g. { CN = "Corp Root", O = "Corp" }'),
        (HEAD + "[pki.root]\nsubject = { CN = 1 }\n",
         PKI_ROOT + ".subject.CN: expected a string, got 1"),
        (META + '[[tenants]]\nname = "acme"\nzones = 5\n',
         "tenants[0].zones: expected a list, got 5"),
    ],
)
def test_wrong_types(text, expected):
    assert problems(text) == [expected]




@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(HEAD + FLEET + 'clients = "3"\n',
                     "fleets[0].clients: expected a whole number, got '3'",
                     id="string-for-int"),
        pytest.param(HEAD + FLEET + "clients = true\n",
                     "fleets[0].clients: expected a whole number, got True",
                     id="bool-for-int"),
        pytest.param(HEAD + FLEET + "clients = 2.5\n",
                     "fleets[0].clients: expected a whole number, got 2.5",
                     id="float-for-int"),
        pytest.param(HEAD + '[[fleets]]\nname = "app"\nhostname = 5\n',
                     "fleets[0].hostname: expected a string, got 5",
                     id="int-for-string"),
        pytest.param(HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = "3"\n',
                     "expect[0].value: expected a number, got '3'",
                     id="string-for-number"),
        pytest.param(HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = true\n',
                     "expect[0].value: expected a number, got True",
                     id="bool-for-number"),
        pytest.param(HEAD + "[settings]\nfail_on_rejected_action = 1\n",
                     "settings.fail_on_rejected_action: expected true or false, got 1",
                     id="int-for-bool"),
    ],
)
def test_wrong_scalar_types(text, expected):
    try:
        found = problems(text)
    except pytest.fail.Exception:
        pytest.fail(f"accepted: {text!r}")
    assert found == [expected]


def test_string_for_a_list_is_refused():
    text = META + '[[tenants]]\nname = "acme"\nzones = "acme.test"\n'
    try:
        found = problems(text)
    except pytest.fail.Exception:
        pytest.fail(f"zones became {parse(text).tenants[0].zones}")
    assert len(found) == 1 and found[0].startswith("tenants[0].zones: ")


def test_string_for_a_table_says_a_table_was_expected():
    [line] = problems(HEAD + '[edge]\npropagation = "5s"\n')
    assert line.startswith("edge.propagation: ") and "unknown error" not in line


# --- enums ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "kind", "given"),
    [
        (HEAD + ROOT_CA + FLEET + 'cert = { profile = "vaild", issuer = "root" }\n',
         "fleets[0].cert.profile", Profile, "vaild"),
        (HEAD + FLEET + 'cert = { source = "issued" }\n',
         "fleets[0].cert.source", m.CertSource, "issued"),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "upload"\n',
         "timeline[0].action", m.ActionKind, "upload"),
        (META + '[[tenants]]\nname = "acme"\nzones = ["acme.test"]\nplan = "platinum"\n',
         "tenants[0].plan", Plan, "platinum"),
        (HEAD + '[[expect]]\nmetric = "blokced"\nop = "=="\nvalue = 0\n',
         "expect[0].metric", m.Metric, "blokced"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "="\nvalue = 0\n',
         "expect[0].op", m.Op, "="),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "deploy_rules"\nzone = "acme.test"\n'
         'rules = [{ expression = "true", action = "deny" }]\n',
         "timeline[0].rules[0].action", Action, "deny"),
        (HEAD + '[settings]\nmanaged_ca_scope = "global"\n',
         "settings.managed_ca_scope", ManagedCaScope, "global"),
    ],
)
def test_bad_enum_lists_the_choices(text, path, kind, given):
    assert problems(text) == [f"{path}: expected one of {choices(kind)}, got {given!r}"]


def test_enum_choices_are_spelt_out():
    [line] = problems(HEAD + '[[expect]]\nmetric = "blocked"\nop = "="\nvalue = 0\n')
    assert line == "expect[0].op: expected one of '==', '!=', '<', '<=', '>', '>=', got '='"


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (HEAD + ROOT_CA + 'key = "dsa"\n', PKI_ROOT + ".key"),
        (HEAD + ROOT_CA + FLEET + 'cert = { issuer = "root", key = "dsa" }\n',
         "fleets[0].cert.key"),
    ],
)
def test_bad_key_type_lists_the_choices(text, path):
    assert problems(text) == [
        f"{path}: expected one of 'ec', 'ec384', 'rsa', 'ed25519', got 'dsa'"
    ]


# --- durations, offsets, date-times -----------------------------------------------------------

DURATION = 'expected a duration like "90s" (units ms, s, m, h, d, w), got '
OFFSET = 'expected an offset like "-30d" or "+2h" (units ms, s, m, h, d, w), got '


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD.replace('"1h"', '"3 hours"'), f"meta.duration: {DURATION}'3 hours'"),
        (HEAD.replace('"1h"', '"0s"'), "meta.duration: expected a duration above 0"),
        (HEAD + FLEET + 'interval = "-5m"\n', f"fleets[0].interval: {DURATION}'-5m'"),
        (HEAD + FLEET + "interval = -300\n",
         "fleets[0].interval: expected a duration that is not negative, got -300"),
        (HEAD + FLEET + 'interval = "0s"\n', "fleets[0].interval: expected a duration above 0"),
        (HEAD + '[edge]\nhandshake_timeout = "10"\n', f"edge.handshake_timeout: {DURATION}'10'"),
        (HEAD + '[edge]\npropagation = { min = "5s", max = "1s" }\n',
         "edge.propagation.max: expected a delay of at least min"),
        (HEAD + '[[timeline]]\nat = "-1m"\naction = "phase"\nphase = "p"\n',
         f"timeline[0].at: {DURATION}'-1m'"),
        (HEAD + ROOT_CA + 'valid_from = "bogus"\n', PKI_ROOT + f".valid_from: {OFFSET}'bogus'"),
        (HEAD + ROOT_CA + FLEET + 'cert = { issuer = "root", valid_until = "soon" }\n',
         f"fleets[0].cert.valid_until: {OFFSET}'soon'"),
        (HEAD + ROOT_CA + 'valid_from = "+1d"\nvalid_until = "-1d"\n',
         PKI_ROOT + ".valid_until: expected a time after valid_from"),
    ],
)
def test_bad_durations_and_offsets(text, expected):
    assert problems(text) == [expected]


def test_durations_and_offsets_are_read():
    scenario = parse(
        HEAD + ROOT_CA + 'valid_from = "-30d"\nvalid_until = "+1h30m"\n'
        + FLEET + 'interval = 90\ncert = { issuer = "root", valid_until = "+90m" }\n'
    )
    assert scenario.pki["root"].valid_from == dt.timedelta(days=-30)
    assert scenario.pki["root"].valid_until == dt.timedelta(minutes=90)
    assert isinstance(scenario.pki["root"].valid_from, m.Offset)
    assert scenario.fleets[0].interval == dt.timedelta(seconds=90)
    assert scenario.fleets[0].cert.valid_until == dt.timedelta(minutes=90)


def test_naive_date_time_is_refused():
    text = HEAD.replace("start = 2026-06-01T08:00:00Z", "start = 2026-06-01T08:00:00")
    assert problems(text) == [
        "meta.start: expected a date-time with a time zone, e.g. 2026-06-01T00:00:00Z"
    ]


def test_date_means_midnight_utc_and_offsets_are_kept():
    assert parse(HEAD.replace("2026-06-01T08:00:00Z", "2026-06-01")).meta.start == dt.datetime(
        2026, 6, 1, tzinfo=dt.timezone.utc
    )
    start = parse(HEAD.replace("08:00:00Z", "08:00:00+02:00")).meta.start
    assert start.utcoffset() == dt.timedelta(hours=2)


# --- missing keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD.replace('name = "test"\n', ""), ["meta.name: required key missing"]),
        (HEAD + '[[fleets]]\nname = "app"\n', ["fleets[0].hostname: required key missing"]),
        (HEAD + '[[timeline]]\naction = "phase"\nphase = "p"\n',
         ["timeline[0].at: required key missing"]),
        (HEAD + '[[expect]]\nop = "=="\nvalue = 0\n', ["expect[0].metric: required key missing"]),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "deploy_rules"\nzone = "acme.test"\n'
         'rules = [{ action = "block" }]\n',
         ["timeline[0].rules[0].expression: required key missing"]),
        (META, ["tenants: required key missing"]),
        (TENANT, ["meta: required key missing"]),
        ('[meta]\nname = "x"\n' + TENANT,
         ["meta.start: required key missing", "meta.duration: required key missing"]),
    ],
)
def test_missing_required_keys(text, expected):
    assert problems(text) == expected


# --- checks that span a table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + FLEET + "clients = 0\n", "fleets[0].clients: expected a number above 0, got 0"),
        (HEAD + FLEET + "requests_per_connection = 0\n",
         "fleets[0].requests_per_connection: expected a number above 0, got 0"),
        (HEAD + FLEET + "paths = []\n", "fleets[0].paths: expected at least one entry"),
        (META + '[[tenants]]\nname = "acme"\nzones = []\n',
         "tenants[0].zones: expected at least one entry"),
        (HEAD + "[edge]\nnodes = 0\n", "edge.nodes: expected a number above 0, got 0"),
        (HEAD + "[edge]\nmax_chain_depth = -1\n",
         "edge.max_chain_depth: expected a number of 0 or more, got -1"),
        (HEAD + FLEET + 'cert = { source = "managed", zone = "acme.test", validity_days = 0 }\n',
         "fleets[0].cert.validity_days: expected 1 to 36500 days, got 0"),
        (HEAD + ROOT_CA + FLEET + 'cert = { profile = "too_deep", issuer = "root", depth = 0 }\n',
         "fleets[0].cert.depth: expected a number above 0, got 0"),
        (HEAD + FLEET + 'cert = { profile = "valid" }\n',
         "fleets[0].cert.issuer: profile 'valid' needs a CA of [pki]"),
        (HEAD + FLEET + 'cert = { source = "managed" }\n',
         "fleets[0].cert.zone: a managed certificate needs the zone it is issued in"),
        (HEAD + ROOT_CA + FLEET
         + 'cert = { profile = "expired", issuer = "root", valid_from = "-1d" }\n',
         "fleets[0].cert.valid_from: a validity window goes with profile 'valid' only"),
        (HEAD + '[pki.root]\nkey = "rsa"\n',
         PKI_ROOT + ": expected exactly one of `subject` (generate) or `pem` (load)"),
        (HEAD + ROOT_CA + 'pem = "root.pem"\n',
         PKI_ROOT + ": expected exactly one of `subject` (generate) or `pem` (load)"),
        (HEAD + '[pki.root]\npem = "root.pem"\nparent = "other"\n',
         PKI_ROOT + ".parent: applies to generated CAs only, not to `pem`"),
        (HEAD + ROOT_CA + 'key_pem = "root.key"\n',
         PKI_ROOT + ".key_pem: goes with `pem`; a generated CA has its own key"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nphase = "a"\nafter = "b"\n',
         "expect[0]: expected at most one of phase, before, after"),
    ],
)
def test_checks_within_a_table(text, expected):
    assert problems(text) == [expected]


def test_profile_none_needs_no_issuer():
    cert = parse(HEAD + FLEET + 'cert = { profile = "none" }\n').fleets[0].cert
    assert cert.profile is Profile.NONE and cert.issuer is None


@pytest.mark.parametrize("kind", list(m.ActionKind), ids=lambda kind: kind.value)
def test_action_without_its_keys(kind):
    text = HEAD + f'[[timeline]]\nat = "1m"\naction = "{kind.value}"\n'
    assert problems(text) == [
        f"timeline[0]: action {kind.value!r} needs {', '.join(m.REQUIRED[kind])}"
    ]


def test_action_names_only_the_missing_keys():
    text = HEAD + '[[timeline]]\nat = "1m"\naction = "upload_ca"\ntenant = "acme"\n'
    assert problems(text) == ["timeline[0]: action 'upload_ca' needs ca"]


# --- cross-references -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + ROOT_CA + '[pki.sub]\nsubject = { CN = "Sub" }\nparent = "rot"\n',
         "pki.sub.parent: no CA named 'rot' in [pki]"),
        (HEAD + ROOT_CA + FLEET + 'cert = { issuer = "nope" }\n',
         "fleets[0].cert.issuer: no CA named 'nope' in [pki]"),
        (HEAD + FLEET + 'cert = { source = "managed", zone = "acme.tset" }\n',
         "fleets[0].cert.zone: no tenant has zone 'acme.tset'"),
        (HEAD + "[edge]\nnodes = 2\n" + FLEET + 'nodes = ["pop-1", "pop-3"]\n',
         "fleets[0].nodes: no node 'pop-3' (nodes are pop-1, pop-2)"),
        (HEAD + '[[tenants]]\nname = "acme"\nzones = ["other.test"]\n',
         "tenants: names must be unique"),
        (HEAD + FLEET + FLEET, "fleets: names must be unique"),
        (HEAD + ROOT_CA + UPLOAD.replace('tenant = "acme"', 'tenant = "acme-corp"'),
         "timeline[0].tenant: no tenant named 'acme-corp'"),
        (HEAD + UPLOAD.replace('ca = "root"', 'ca = "nope"'),
         "timeline[0].ca: no CA named 'nope' in [pki]"),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "deploy_rules"\nzone = "acme.tset"\n'
         "rules = []\n",
         "timeline[0].zone: no tenant has zone 'acme.tset'"),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "revoke"\nfleet = "ap"\n',
         "timeline[0].fleet: no fleet named 'ap'"),
        (HEAD + '[[timeline]]\nat = "1m"\naction = "partition"\nnode = "pop-2"\n',
         "timeline[0].node: no node 'pop-2' (nodes are pop-1)"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nphase = "log"\n',
         "expect[0].phase: no timeline entry opens phase 'log'"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nbefore = "enforce"\n',
         "expect[0].before: no timeline entry opens phase 'enforce'"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nafter = "enforce"\n',
         "expect[0].after: no timeline entry opens phase 'enforce'"),
        (HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nfleet = "ap"\n',
         "expect[0].fleet: no fleet named 'ap'"),
    ],
)
def test_references(text, expected):
    assert problems(text) == [expected]


NOT_UPLOADED = (
    "{where}.ca: {ca!r} is not uploaded by an earlier upload_ca "
    '(use its name, or "managed" for the managed CA)'
)


def _associate(at: str, ca: str | None) -> str:
    line = "" if ca is None else f'ca = "{ca}"\n'
    return (f'[[timeline]]\nat = "{at}"\naction = "associate"\nzone = "acme.test"\n'
            f'hostnames = ["api.acme.test"]\n{line}')


def _delete(at: str, ca: str) -> str:
    return f'[[timeline]]\nat = "{at}"\naction = "delete_ca"\ntenant = "acme"\nca = "{ca}"\n'


@pytest.mark.parametrize("later", [_associate, _delete], ids=["associate", "delete_ca"])
def test_ca_must_be_uploaded_earlier_in_time(later):
    # listed first in the file but later in time: fine
    parse(HEAD + ROOT_CA + later("5m", "root") + UPLOAD)
    # uploaded after it: refused, with the entry's index in the file
    assert problems(HEAD + ROOT_CA + UPLOAD.replace('"1m"', '"10m"') + later("5m", "root")) == [
        NOT_UPLOADED.format(where="timeline[1]", ca="root")
    ]
    # never uploaded
    assert problems(HEAD + ROOT_CA + later("5m", "root")) == [
        NOT_UPLOADED.format(where="timeline[0]", ca="root")
    ]


def test_same_time_follows_file_order():
    parse(HEAD + ROOT_CA + UPLOAD + _associate("1m", "root"))
    assert problems(HEAD + ROOT_CA + _associate("1m", "root") + UPLOAD) == [
        NOT_UPLOADED.format(where="timeline[0]", ca="root")
    ]


def test_an_upload_is_referred_to_by_its_name():
    upload = UPLOAD + 'name = "corp"\n'
    parse(HEAD + ROOT_CA + upload + _associate("5m", "corp"))
    assert problems(HEAD + ROOT_CA + upload + _associate("5m", "root")) == [
        NOT_UPLOADED.format(where="timeline[1]", ca="root")
    ]


def test_associate_with_the_managed_ca():
    scenario = parse(HEAD + _associate("1m", "managed") + _associate("2m", None))
    assert [entry.ca for entry in scenario.timeline] == ["managed", None]


def test_phase_opened_by_any_action_can_be_referred_to():
    parse(
        HEAD + '[[timeline]]\nat = "1m"\naction = "heal"\nnode = "pop-1"\nphase = "healed"\n'
        '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nafter = "healed"\n'
    )


def test_loaded_ca_without_key_cannot_issue_fleet_certificates():
    text = HEAD + '[pki.partner]\npem = "partner.pem"\n' + FLEET + 'cert = { issuer = "partner" }\n'
    assert problems(text) == [
        "fleets[0].cert.issuer: CA 'partner' is loaded without key_pem, "
        "so no client certificate can be issued from it"
    ]
    parse(text.replace('pem = "partner.pem"', 'pem = "partner.pem"\nkey_pem = "partner.key"'))


def test_expect_node_must_exist():
    text = HEAD + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nnode = "pop-9"\n'
    assert problems(text) == ["expect[0].node: no node 'pop-9' (nodes are pop-1)"]


def test_pki_parent_cycle_is_refused():
    text = HEAD + '[pki.a]\nsubject = { CN = "A" }\nparent = "b"\n' \
        '[pki.b]\nsubject = { CN = "B" }\nparent = "a"\n'
    found = problems(text)
    assert found and all(line.startswith(("pki.a.parent", "pki.b.parent")) for line in found)


def test_parent_loaded_without_key_is_refused():
    text = HEAD + '[pki.partner]\npem = "partner.pem"\n' \
        '[pki.sub]\nsubject = { CN = "Sub" }\nparent = "partner"\n'
    [line] = problems(text)
    assert line.startswith("pki.sub.parent: ")


def test_delete_ca_of_the_managed_ca_is_refused():
    [line] = problems(HEAD + _delete("1m", "managed"))
    assert line.startswith("timeline[0].ca: ")


# --- files next to the scenario ----------------------------------------------------------------


def _write(folder: Path, text: str) -> Path:
    path = folder / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_pem_files_are_found_next_to_the_scenario(tmp_path, monkeypatch):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "partner.pem").write_text("not read by the loader\n")
    (tmp_path / "certs" / "partner.key").write_text("not read by the loader\n")
    path = _write(tmp_path, HEAD + '[pki.partner]\npem = "certs/partner.pem"\n'
                  'key_pem = "certs/partner.key"\n')
    monkeypatch.chdir(tmp_path / "certs")  # relative to the scenario, not to the working folder
    scenario, base = load(path)
    assert base == tmp_path
    assert scenario.pki["partner"].pem == "certs/partner.pem"


def test_missing_pem_files_are_reported(tmp_path):
    (tmp_path / "here.pem").write_text("x\n")
    path = _write(tmp_path, HEAD + '[pki.partner]\npem = "partner.pem"\nkey_pem = "partner.key"\n'
                  '[pki.lab]\npem = "here.pem"\nkey_pem = "keys/lab.key"\n')
    with pytest.raises(ScenarioError) as caught:
        load(path)
    assert caught.value.problems == [
        "pki.partner.pem: no file 'partner.pem' next to the scenario",
        "pki.partner.key_pem: no file 'partner.key' next to the scenario",
        "pki.lab.key_pem: no file 'keys/lab.key' next to the scenario",
    ]


def test_a_file_in_the_working_folder_does_not_count(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "partner.pem").write_text("x\n")
    monkeypatch.chdir(tmp_path / "elsewhere")
    (tmp_path / "scenarios").mkdir()
    path = _write(tmp_path / "scenarios", HEAD + '[pki.partner]\npem = "partner.pem"\n')
    with pytest.raises(ScenarioError) as caught:
        load(path)
    assert caught.value.problems == ["pki.partner.pem: no file 'partner.pem' next to the scenario"]


# --- the error itself ------------------------------------------------------------------------


def test_invalid_toml():
    [line] = problems(HEAD + "[[fleets]]\nname = \n")
    assert line.startswith("not valid TOML: ")


def test_duplicate_toml_key_is_invalid_toml():
    [line] = problems(HEAD.replace('name = "test"', 'name = "a"\nname = "b"'))
    assert line.startswith("not valid TOML: ")


def test_error_names_the_file(tmp_path):
    path = _write(tmp_path, HEAD + FLEET + "clients = 0\n")
    with pytest.raises(ScenarioError) as caught:
        load(path)
    error = caught.value
    assert error.source == str(path)
    assert str(error) == f"{path}: invalid scenario\n  fleets[0].clients: expected a number above 0, got 0"


def test_parse_names_its_source():
    with pytest.raises(ScenarioError) as caught:
        parse(META, source="rollout.toml")
    assert str(caught.value).splitlines() == [
        "rollout.toml: invalid scenario", "  tenants: required key missing"
    ]


def test_unreadable_file_is_a_scenario_error(tmp_path):
    path = tmp_path / "missing.toml"
    with pytest.raises(ScenarioError) as caught:
        load(path)
    assert caught.value.source == str(path)
    [line] = caught.value.problems
    assert line.startswith("cannot read the file: ")


def test_scenario_error_is_a_value_error():
    assert issubclass(ScenarioError, ValueError)


# --- several problems at once -----------------------------------------------------------------


def test_every_type_problem_is_reported_at_once():
    text = """\
[meta]
name = "typos"
start = 2026-06-01T08:00:00
duration = "3 hours"
colour = "blue"

[pki.root]
subject = { CN = "Root" }
key = "dsa"

[[tenants]]
name = "acme"
zones = ["acme.test"]
plan = "platinum"

[[fleets]]
name = "app"
cert = { profile = "vaild", issuer = "root" }

[[fleets]]
name = "ok"
hostname = "api.acme.test"
clients = 0

[[timeline]]
at = "10m"
action = "upload"

[[expect]]
metric = "blocked"
op = "="
value = 0
"""
    found = problems(text)
    assert [line.split(": ", 1)[0] for line in found] == [
        "meta.start",
        "meta.duration",
        "meta",
        "tenants[0].plan",
        PKI_ROOT + ".key",
        "fleets[0].hostname",
        "fleets[0].cert.profile",
        "fleets[1].clients",
        "timeline[0].action",
        "expect[0].op",
    ]


def test_checks_spanning_a_table_wait_for_its_types():
    # fleets[0]: clients = 0 is only checked once every key of the fleet has a valid type
    found = problems(HEAD + '[[fleets]]\nname = "app"\nclients = 0\n')
    assert found == ["fleets[0].hostname: required key missing"]


def test_every_reference_problem_is_reported_at_once():
    text = (
        HEAD + ROOT_CA + '[pki.sub]\nsubject = { CN = "Sub" }\nparent = "rot"\n'
        + FLEET + 'cert = { issuer = "nope" }\nnodes = ["pop-7"]\n'
        + _associate("1m", "root").replace("acme.test", "acme.tset", 1)
        + UPLOAD.replace('"1m"', '"2m"')
        + '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nafter = "enforce"\nfleet = "ap"\n'
    )
    assert problems(text) == [
        "pki.sub.parent: no CA named 'rot' in [pki]",
        "fleets[0].cert.issuer: no CA named 'nope' in [pki]",
        "fleets[0].nodes: no node 'pop-7' (nodes are pop-1)",
        "timeline[0].zone: no tenant has zone 'acme.tset'",
        NOT_UPLOADED.format(where="timeline[0]", ca="root"),
        "expect[0].after: no timeline entry opens phase 'enforce'",
        "expect[0].fleet: no fleet named 'ap'",
    ]


def test_a_rule_expression_is_checked_when_the_file_loads():
    text = HEAD + (
        '[[timeline]]\nat = "1m"\naction = "deploy_rules"\nzone = "acme.test"\n'
        'rules = [{ expression = "not cf.tls_client_auth.cert_verifed", action = "log" }]\n'
    )
    [line] = problems(text)
    assert line.startswith("timeline[0].rules[0].expression: column 5: expected a known field")


# --- checks documented in docs/scenarios.md ----------------------------------------------------

EXPECT = '[[expect]]\nmetric = "requests"\nop = ">"\nvalue = 0\n'


@pytest.mark.parametrize("at", ['"1h"', '"2h"', "3600"])
def test_timeline_entry_at_or_after_the_end_is_refused(at):
    text = HEAD + f'[[timeline]]\nat = {at}\naction = "phase"\nphase = "late"\n'
    [line] = problems(text)
    assert line.startswith("timeline[0].at: ") and line.endswith(
        "is not before the end of the run (meta.duration 1h)"
    )


def test_expect_may_name_the_first_phase():
    for key in ("phase", "before", "after"):
        parse(HEAD + EXPECT + f'{key} = "start"\n')


@pytest.mark.parametrize("reason", ["EXPIRED", "POLICY_MISSING", "SNI_HOST_MISMATCH",
                                    "handshake_failed", "timeout"])
def test_expect_reason_may_be_a_verdict_reason_or_a_tls_outcome(reason):
    parse(HEAD + EXPECT + f'reason = "{reason}"\n')


def test_expect_reason_must_be_known():
    [line] = problems(HEAD + EXPECT + 'reason = "EXPIRD"\n')
    assert line.startswith("expect[0].reason: expected one of ") and line.endswith(", got 'EXPIRD'")


def test_expect_hostname_is_a_host_some_fleet_sends():
    fleets = FLEET + '[[fleets]]\nname = "fronting"\nhostname = "api.acme.test"\n' \
        'host = "www.other.test"\n'
    parse(HEAD + fleets + EXPECT + 'hostname = "api.acme.test"\n')
    parse(HEAD + fleets + EXPECT + 'hostname = "www.other.test"\n')
    assert problems(HEAD + fleets + EXPECT + 'hostname = "api.acme.tset"\n') == [
        "expect[0].hostname: no fleet sends requests to 'api.acme.tset' "
        "(they go to api.acme.test, www.other.test)"
    ]


def test_send_chain_is_a_boolean():
    cert = 'cert = { issuer = "root", send_chain = %s }\n'
    assert parse(HEAD + ROOT_CA + FLEET + cert % "false").fleets[0].cert.send_chain is False
    assert problems(HEAD + ROOT_CA + FLEET + cert % '"no"') == [
        "fleets[0].cert.send_chain: expected true or false, got 'no'"
    ]


def test_a_zone_listed_by_two_tenants_is_refused():
    text = HEAD + '[[tenants]]\nname = "other"\nzones = ["acme.test"]\n'
    assert "tenants: zone 'acme.test' is listed more than once (a zone has one owner)" in problems(text)


def test_start_cannot_be_named_when_a_phase_opens_at_0s():
    text = HEAD + (
        '[[timeline]]\nat = "0s"\nphase = "setup"\naction = "phase"\n'
        '[[expect]]\nmetric = "blocked"\nop = "=="\nvalue = 0\nbefore = "start"\n'
    )
    assert problems(text) == ["expect[0].before: no timeline entry opens phase 'start'"]


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ('["/a b"]', "fleets[0].paths: not a request target (printable ASCII, no spaces): '/a b'"),
        ('["api"]', "fleets[0].paths: expected paths starting with '/', got 'api'"),
        ("[]", "fleets[0].paths: expected at least one entry"),
    ],
)
def test_fleet_paths_must_be_request_targets(paths, expected):
    assert problems(HEAD + FLEET + f"paths = {paths}\n") == [expected]


def test_a_fleet_host_header_must_be_one_line():
    assert problems(HEAD + FLEET + 'host = "a\\nX-Evil: 1"\n') == [
        "fleets[0].host: not a valid Host header value: 'a\\nX-Evil: 1'"
    ]
