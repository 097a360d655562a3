"""Evaluating rule expressions and rule lists: against hand-made requests, against a reference
interpreter on random well-typed expressions, and the regex engine against Python's `re`."""

from __future__ import annotations

import ipaddress
import random
import re
import time

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.control.records import Action, Rule
from edge.node.verdict import ClientAuthFields
from edge.rules import (
    FIELD_TYPES,
    Evaluation,
    FieldType,
    RuleSyntaxError,
    compile_expression,
    compile_rules,
)
from edge.rules.regex import compile_pattern

ISSUER_SKI = "A5A4C1E3D5B4B2D2F1A0E9D8C7B6A5F4E3D2C1B0"


def request(host="api.example.com", path="/api", *, verified=False, revoked=False, **extra) -> dict:
    """The fields of a request as the node would build them: 21 client-auth fields and HTTP ones."""
    auth = ClientAuthFields(
        cert_presented=verified,
        cert_verified=verified,
        cert_revoked=revoked,
        cert_issuer_ski=ISSUER_SKI,
    )
    fields = auth.as_fields()
    fields.update(
        {
            "http.host": host,
            "http.request.uri.path": path,
            "http.request.method": "GET",
            "http.request.full_uri": f"https://{host}{path}",
            "ip.src": "192.0.2.10",
            "ssl": True,
            "cf.tls_version": "TLSv1.3",
        }
    )
    fields.update(extra)
    return fields


# --- the reference examples ----------------------------------------------------------------------


def test_standard_byoca_rule():
    rule = compile_expression(
        '(http.host in {"api.example.com" "b.example.com"} and not cf.tls_client_auth.cert_verified)'
    )
    assert rule.evaluate(request("api.example.com", verified=False))
    assert rule.evaluate(request("b.example.com", verified=False))
    assert not rule.evaluate(request("api.example.com", verified=True))
    assert not rule.evaluate(request("www.example.com", verified=False))
    assert not rule.evaluate(request("API.example.com", verified=False))  # case matters


def test_dashboard_template():
    rule = compile_expression(
        'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/api"}'
    )
    assert rule.evaluate(request(path="/api"))
    assert not rule.evaluate(request(path="/api/users"))  # `in` is exact, not a prefix
    assert not rule.evaluate(request(path="/api", verified=True))


def test_revocation_variant():
    rule = compile_expression(
        'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/api"}'
        " or cf.tls_client_auth.cert_revoked"
    )
    assert rule.evaluate(request(path="/api"))
    assert rule.evaluate(request(path="/elsewhere", verified=True, revoked=True))  # `or` binds last
    assert not rule.evaluate(request(path="/api", verified=True))
    assert not rule.evaluate(request(path="/elsewhere"))


def test_issuer_pinning():
    rule = compile_expression(f'cf.tls_client_auth.cert_issuer_ski eq "{ISSUER_SKI}"')
    assert rule.evaluate(request())
    assert not rule.evaluate(request(**{"cf.tls_client_auth.cert_issuer_ski": "00" * 20}))
    assert not rule.evaluate(request(**{"cf.tls_client_auth.cert_issuer_ski": ISSUER_SKI.lower()}))


def test_missing_fields_read_as_cloudflares_empty_values():
    assert compile_expression("not cf.tls_client_auth.cert_verified").evaluate({})
    assert compile_expression('http.host == ""').evaluate({})
    assert not compile_expression("ip.src in {0.0.0.0/0 ::/0}").evaluate({})
    assert compile_expression("ip.src != 192.0.2.1").evaluate({})


# --- every operator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value, expected",
    [
        ('http.request.method == "GET"', "GET", True),
        ('http.request.method eq "GET"', "get", False),
        ('http.request.method != "GET"', "POST", True),
        ('http.request.method ne "GET"', "GET", False),
        ('http.request.method < "GET"', "DELETE", True),  # lexicographic
        ('http.request.method lt "GET"', "PUT", False),
        ('http.request.method <= "GET"', "GET", True),
        ('http.request.method le "GET"', "GETS", False),
        ('http.request.method > "GET"', "GETS", True),
        ('http.request.method gt "GET"', "GET", False),
        ('http.request.method >= "GET"', "GET", True),
        ('http.request.method ge "GET"', "DELETE", False),
        ('http.request.method > "Z"', "a", True),  # by code point: lower case after upper case
        ('http.request.method contains "ET"', "GET", True),
        ('http.request.method contains "et"', "GET", False),
        ('http.request.method contains ""', "", True),
        ('http.request.method in {"GET" "HEAD"}', "HEAD", True),
        ('http.request.method in {"GET" "HEAD"}', "POST", False),
        ('http.request.method matches "^(GET|HEAD)$"', "HEAD", True),
        ('http.request.method matches "^(GET|HEAD)$"', "HEADS", False),
        ('http.request.method matches "(?i)^get$"', "GeT", True),
        ('http.request.method matches "E"', "GET", True),  # a search, not a full match
        ('http.request.method matches "\\\\d+"', "GET2", True),  # "\\d" in the rule is \d
        ('http.request.method matches "^\\\\w+$"', "GET /", False),
        ('http.request.method matches "a\\"b"', 'a"b', True),
    ],
)
def test_string_operators(text, value, expected):
    assert compile_expression(text).evaluate({"http.request.method": value}) is expected


@pytest.mark.parametrize(
    "text, value, expected",
    [
        ("ssl", True, True),
        ("ssl", False, False),
        ("not ssl", False, True),
        ("!ssl", True, False),
        ("ssl == true", True, True),
        ("ssl eq false", True, False),
        ("ssl != false", True, True),
        ("ssl ne true", True, False),
        ("ssl in {false}", False, True),
        ("ssl in {true}", False, False),
    ],
)
def test_boolean_operators(text, value, expected):
    assert compile_expression(text).evaluate({"ssl": value}) is expected


INT_SCHEMA = {**FIELD_TYPES, "test.count": FieldType.INT}


@pytest.mark.parametrize(
    "text, value, expected",
    [
        ("test.count == 10", 10, True),
        ("test.count != 10", 10, False),
        ("test.count < 10", 9, True),
        ("test.count lt 10", 10, False),
        ("test.count <= -1", -1, True),
        ("test.count > 9", 10, True),  # numeric: "10" < "9" as strings
        ("test.count ge 10", 9, False),
        ("test.count in {1 2 3}", 2, True),
        ("test.count in {1 2 3}", 4, False),
    ],
)
def test_integer_operators(text, value, expected):
    assert compile_expression(text, schema=INT_SCHEMA).evaluate({"test.count": value}) is expected


@pytest.mark.parametrize(
    "text, address, expected",
    [
        ("ip.src == 192.0.2.1", "192.0.2.1", True),
        ("ip.src eq 192.0.2.1", "192.0.2.2", False),
        ("ip.src != 192.0.2.1", "192.0.2.2", True),
        ("ip.src == 2001:db8::1", "2001:db8:0::1", True),  # compared as addresses, not text
        ("ip.src in {10.0.0.0/8 192.0.2.1}", "10.200.0.1", True),
        ("ip.src in {10.0.0.0/8 192.0.2.1}", "192.0.2.1", True),
        ("ip.src in {10.0.0.0/8 192.0.2.1}", "11.0.0.1", False),
        ("ip.src in {2001:db8::/32}", "2001:db8:ffff::1", True),
        ("ip.src in {2001:db8::/32}", "10.0.0.1", False),
        ("ip.src in {10.1.2.3/8}", "10.9.9.9", True),  # host bits are dropped
        ("ip.src == 192.0.2.1", "not an address", False),
        ("ip.src != 192.0.2.1", "not an address", True),
    ],
)
def test_ip_operators(text, address, expected):
    rule = compile_expression(text)
    assert rule.evaluate({"ip.src": address}) is expected
    if expected is True and address != "not an address":
        assert rule.evaluate({"ip.src": ipaddress.ip_address(address)})


@pytest.mark.parametrize(
    "text, cases",
    [
        ("a and b", {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 1}),
        ("a && b", {(0, 0): 0, (0, 1): 0, (1, 0): 0, (1, 1): 1}),
        ("a or b", {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 1}),
        ("a || b", {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 1}),
        ("a xor b", {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 0}),
        ("a ^^ b", {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 0}),
        ("not a and b", {(0, 0): 0, (0, 1): 1, (1, 0): 0, (1, 1): 0}),
        ("not (a and b)", {(0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 0}),
    ],
)
def test_logical_operators(text, cases):
    schema = {"a": FieldType.BOOL, "b": FieldType.BOOL}
    rule = compile_expression(text, schema=schema)
    for (a, b), expected in cases.items():
        assert rule.evaluate({"a": bool(a), "b": bool(b)}) is bool(expected)


def test_precedence_by_truth_table():
    schema = {name: FieldType.BOOL for name in "abcd"}
    checks = {
        "a or b and c": lambda a, b, c, d: a or (b and c),
        "a and b or c": lambda a, b, c, d: (a and b) or c,
        "a xor b and c": lambda a, b, c, d: a != (b and c),
        "a or b xor c": lambda a, b, c, d: a or (b != c),
        "a xor b or c xor d": lambda a, b, c, d: (a != b) or (c != d),
        "not a xor b": lambda a, b, c, d: (not a) != b,
        "a xor b xor c": lambda a, b, c, d: (a != b) != c,
        "!a && b || !c ^^ d": lambda a, b, c, d: ((not a) and b) or ((not c) != d),
    }
    for text, model in checks.items():
        rule = compile_expression(text, schema=schema)
        for bits in range(16):
            values = {name: bool(bits >> i & 1) for i, name in enumerate("abcd")}
            assert rule.evaluate(values) is model(**values), (text, values)


# --- random well-typed expressions against a reference interpreter --------------------------------

BOOL_FIELDS = ["ssl", "cf.tls_client_auth.cert_verified", "cf.tls_client_auth.cert_revoked"]
STRING_FIELDS = ["http.host", "http.request.uri.path", "cf.tls_client_auth.cert_issuer_ski"]
STRINGS = st.text(alphabet='ab"\\', max_size=3)
ADDRESSES = ["192.0.2.1", "192.0.2.200", "10.1.2.3", "2001:db8::1", "::1"]
NETWORKS = ["192.0.2.0/25", "10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"]
# Patterns whose meaning is the same for the engine and for re.search on text without newlines.
PATTERNS = ["a", "^a", "b$", "^$", "a.b", "(a|b)+\\\\.", "^[ab]*$", "a{2}", "[^a]", '\\"', "(?i)A"]


def comparisons() -> st.SearchStrategy:
    bare = st.tuples(st.just("field"), st.sampled_from(BOOL_FIELDS))
    boolean = st.tuples(
        st.just("cmp"), st.sampled_from(BOOL_FIELDS), st.sampled_from(["==", "!="]), st.booleans()
    )
    string = st.tuples(
        st.just("cmp"),
        st.sampled_from(STRING_FIELDS),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "contains"]),
        STRINGS,
    )
    regex = st.tuples(
        st.just("cmp"),
        st.sampled_from(STRING_FIELDS),
        st.just("matches"),
        st.sampled_from(PATTERNS),
    )
    integer = st.tuples(
        st.just("cmp"),
        st.just("test.count"),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.integers(-3, 3),
    )
    address = st.tuples(
        st.just("cmp"), st.just("ip.src"), st.sampled_from(["==", "!="]), st.sampled_from(ADDRESSES)
    )
    sets = st.one_of(
        st.tuples(
            st.just("in"), st.sampled_from(STRING_FIELDS), st.lists(STRINGS, min_size=1, max_size=3)
        ),
        st.tuples(
            st.just("in"),
            st.just("test.count"),
            st.lists(st.integers(-3, 3), min_size=1, max_size=3),
        ),
        st.tuples(
            st.just("in"),
            st.sampled_from(BOOL_FIELDS),
            st.lists(st.booleans(), min_size=1, max_size=2),
        ),
        st.tuples(
            st.just("in"),
            st.just("ip.src"),
            st.lists(st.sampled_from(ADDRESSES + NETWORKS), min_size=1, max_size=3),
        ),
    )
    return st.one_of(bare, boolean, string, regex, integer, address, sets)


TREES = st.recursive(
    comparisons(),
    lambda children: st.one_of(
        st.tuples(st.just("not"), children),
        st.tuples(st.sampled_from(["and", "or", "xor"]), children, children),
    ),
    max_leaves=10,
)

LEVEL = {"or": 1, "xor": 2, "and": 3}
SPELLINGS = {
    "and": ["and", "&&"],
    "or": ["or", "||"],
    "xor": ["xor", "^^"],
    "not": ["not ", "! ", "!"],
    "==": ["==", "eq"],
    "!=": ["!=", "ne"],
    "<": ["<", "lt"],
    "<=": ["<=", "le"],
    ">": [">", "gt"],
    ">=": [">=", "ge"],
    "contains": ["contains"],
    "matches": ["matches"],
}


def literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value not in ADDRESSES + NETWORKS:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def render(tree, rnd) -> str:
    """The tree as text, with random synonyms, spacing and extra parentheses."""
    text = _render(tree, rnd)
    return f"({text})" if rnd.random() < 0.2 else text


def _render(tree, rnd) -> str:
    kind = tree[0]
    gap = rnd.choice([" ", "  ", "\n"])
    if kind == "field":
        return tree[1]
    if kind == "cmp":
        _, name, op, value = tree
        value_text = f'"{value}"' if op == "matches" else literal(value)
        return f"{name}{gap}{rnd.choice(SPELLINGS[op])}{gap}{value_text}"
    if kind == "in":
        _, name, values = tree
        return f"{name} in {{{gap.join(literal(value) for value in values)}}}"
    if kind == "not":
        operand = render(tree[1], rnd)
        if tree[1][0] in LEVEL:
            operand = f"({operand})"
        return rnd.choice(SPELLINGS["not"]) + operand
    left, right = (render(child, rnd) for child in tree[1:])
    level = LEVEL[kind]
    if tree[1][0] in LEVEL and LEVEL[tree[1][0]] < level:
        left = f"({left})"
    if tree[2][0] in LEVEL and LEVEL[tree[2][0]] < level:
        right = f"({right})"
    return f"{left}{gap}{rnd.choice(SPELLINGS[kind])}{gap}{right}"


DEFAULT = {FieldType.BOOL: False, FieldType.STRING: "", FieldType.INT: 0, FieldType.IP: None}


def reference(tree, fields: dict) -> bool:
    """A direct interpreter of the generated tree: the model the compiled closures must match."""
    kind = tree[0]
    if kind == "not":
        return not reference(tree[1], fields)
    if kind in ("and", "or", "xor"):
        left, right = reference(tree[1], fields), reference(tree[2], fields)
        return {"and": left and right, "or": left or right, "xor": left != right}[kind]
    name = tree[1]
    value = fields.get(name, DEFAULT[INT_SCHEMA[name]])
    if kind == "field":
        return value
    if name == "ip.src":
        address = None if value is None else ipaddress.ip_address(value)
        if kind == "in":
            return address is not None and any(
                (
                    address in ipaddress.ip_network(v)
                    if "/" in v
                    else address == ipaddress.ip_address(v)
                )
                for v in tree[2]
            )
        equal = address is not None and address == ipaddress.ip_address(tree[3])
        return equal if tree[2] == "==" else not equal
    if kind == "in":
        return value in tree[2]
    op, operand = tree[2], tree[3]
    if op == "matches":
        python = operand.replace("\\\\", "\\").replace('\\"', '"').replace("$", "\\Z")
        return re.search(python, value) is not None
    return {
        "==": lambda: value == operand,
        "!=": lambda: value != operand,
        "<": lambda: value < operand,
        "<=": lambda: value <= operand,
        ">": lambda: value > operand,
        ">=": lambda: value >= operand,
        "contains": lambda: operand in value,
    }[op]()


def field_values() -> st.SearchStrategy:
    values = {name: st.booleans() for name in BOOL_FIELDS}
    values.update({name: STRINGS for name in STRING_FIELDS})
    values["test.count"] = st.integers(-4, 4)
    values["ip.src"] = st.sampled_from(ADDRESSES + ["192.0.2.129", "2001:db9::1"])
    # Some fields go missing: they must read as their type's empty value.
    return st.fixed_dictionaries({}, optional=values)


@given(TREES, st.randoms(use_true_random=False), st.lists(field_values(), min_size=1, max_size=4))
def test_compiled_closures_agree_with_a_reference_interpreter(tree, rnd, requests):
    text = render(tree, rnd)
    expression = compile_expression(text, schema=INT_SCHEMA)
    for fields in requests:
        assert expression.evaluate(fields) is reference(tree, fields), (text, fields)


# --- the regex engine against Python's re ---------------------------------------------------------

ATOMS = ["a", "b", "A", ".", "[ab]", "[^a]", "[a-b]", "\\d", "\\w", "\\s", "1", "\\.", ""]


@st.composite
def patterns(draw, depth=0) -> tuple[str, str]:
    """A random pattern in the supported subset, spelled for the engine and for `re`."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        choice = draw(st.integers(0, 9 if depth < 2 else 5))
        if choice <= 5:
            atom = draw(st.sampled_from(ATOMS))
            parts.append((atom, atom))
        elif choice <= 7:
            mine, python = draw(patterns(depth + 1))
            other_mine, other_python = draw(patterns(depth + 1))
            parts.append((f"(?:{mine}|{other_mine})", f"(?:{python}|{other_python})"))
        else:
            mine, python = draw(patterns(depth + 1))
            quantifier = draw(
                st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?", "{1,3}?"])
            )
            parts.append((f"({mine}){quantifier}", f"({python}){quantifier}"))
    mine = "".join(p[0] for p in parts)
    python = "".join(p[1] for p in parts)
    if depth == 0:
        if draw(st.booleans()):
            mine, python = "^" + mine, "^" + python
        if draw(st.booleans()):
            mine, python = mine + "$", python + "\\Z"
        flags = draw(st.sampled_from(["", "(?i)", "(?s)"]))
        mine, python = flags + mine, flags + python
    return mine, python


@given(patterns(), st.lists(st.text(alphabet="abAB1 .\n", max_size=8), min_size=1, max_size=5))
def test_the_regex_engine_agrees_with_re(pattern, texts):
    mine, python = pattern
    search = compile_pattern(mine)
    for text in texts:
        assert search(text) is (re.search(python, text) is not None), (mine, text)


@pytest.mark.parametrize(
    "pattern",
    ["(a|a)*$", "(a+)+$", "(a|aa)*c", ".*.*.*.*x", "(\\w*\\w*\\w*)*!", "^(a?){25}a{25}$"],
)
def test_catastrophic_patterns_for_re_run_in_linear_time(pattern):
    search = compile_pattern(pattern)
    text = "a" * 20_000 + "!"
    started = time.perf_counter()
    search(text)
    search(text[:-1] + "b")
    assert time.perf_counter() - started < 1.0


def test_dollar_is_the_end_of_the_text():
    assert not compile_pattern("a$")("a\n")  # Python's $ would match before the final newline
    assert compile_pattern("(?s)a.$")("a\n")
    assert not compile_pattern("a.$")("a\n")


def test_the_match_cache_is_bounded_and_answers_stay_right():
    pattern = "(a|b)*a(a|b){9}c"  # a DFA of over 1000 states: the cache fills and starts over
    search = compile_pattern(pattern)
    rnd = random.Random(7)
    noise = "".join(rnd.choice("ab") for _ in range(3000))
    for text in [noise, noise + "a" + "b" * 9 + "c", noise + "b" * 10 + "c", "ab" * 300]:
        assert search(text) is (re.search(pattern, text) is not None)
    assert len(search.__self__._sets) <= 512


def test_matches_runs_on_the_field_value():
    rule = compile_expression('http.request.uri.path matches "^/api/v[0-9]+/"')
    assert rule.evaluate({"http.request.uri.path": "/api/v2/users"})
    assert not rule.evaluate({"http.request.uri.path": "/web/api/v2/"})
    assert not rule.evaluate({})


# --- rule lists ----------------------------------------------------------------------------------

UNVERIFIED = "not cf.tls_client_auth.cert_verified"
ON_API = 'http.host == "api.example.com"'


def evaluate(rules: list[Rule], fields: dict) -> Evaluation:
    return compile_rules(rules).evaluate(fields)


def test_log_is_recorded_and_evaluation_goes_on_to_block():
    rules = [
        Rule(UNVERIFIED, Action.LOG, "rehearse"),
        Rule("ssl", Action.LOG),
        Rule(ON_API, Action.BLOCK),
    ]
    assert evaluate(rules, request()) == Evaluation((0, 1, 2), Action.BLOCK, True)
    assert evaluate(rules, request(verified=True)) == Evaluation((1, 2), Action.BLOCK, True)
    assert evaluate(rules, request("www.example.com")) == Evaluation((0, 1), Action.LOG, True)


def test_block_ends_evaluation():
    rules = [Rule(ON_API, Action.BLOCK), Rule("ssl", Action.LOG), Rule("ssl", Action.BLOCK)]
    assert evaluate(rules, request()) == Evaluation((0,), Action.BLOCK, True)


def test_skip_stops_the_remaining_rules():
    rules = [Rule("ssl", Action.LOG), Rule(ON_API, Action.SKIP), Rule(UNVERIFIED, Action.BLOCK)]
    assert evaluate(rules, request()) == Evaluation((0, 1), Action.SKIP, True)
    assert evaluate(rules, request("www.example.com")) == Evaluation((0, 2), Action.BLOCK, True)
    skip_first = [
        Rule(ON_API, Action.SKIP),
        Rule(UNVERIFIED, Action.LOG),
        Rule(UNVERIFIED, Action.BLOCK),
    ]
    assert evaluate(skip_first, request()) == Evaluation((0,), Action.SKIP, False)


def test_disabled_rules_are_ignored_but_still_checked():
    rules = [Rule(UNVERIFIED, Action.BLOCK, enabled=False), Rule(UNVERIFIED, Action.LOG)]
    assert evaluate(rules, request()) == Evaluation((1,), Action.LOG, True)
    with pytest.raises(RuleSyntaxError, match=r"^rules\[1\]\.expression: column 8: "):
        compile_rules([Rule("ssl", Action.LOG), Rule("ssl xor", Action.BLOCK, enabled=False)])


def test_nothing_matched():
    rules = [Rule(UNVERIFIED, Action.BLOCK)]
    assert evaluate(rules, request(verified=True)) == Evaluation((), None, False)
    assert evaluate([], request()) == Evaluation((), None, False)


def test_the_first_bad_rule_is_named():
    rules = [
        Rule("ssl", Action.LOG),
        Rule("ssl", Action.LOG),
        Rule("ssl and {", Action.BLOCK),
        Rule("?", Action.LOG),
    ]
    with pytest.raises(RuleSyntaxError) as caught:
        compile_rules(rules)
    assert str(caught.value) == "rules[2].expression: column 9: expected a field name, got '{'"
    assert caught.value.column == 9


def test_rule_set_reads_and_actions_given_as_text():
    rule_set = compile_rules([Rule(ON_API, "block"), Rule(UNVERIFIED, Action.LOG, enabled=False)])  # type: ignore[arg-type]
    assert rule_set.fields == {"http.host"}
    assert rule_set.evaluate(request()).action is Action.BLOCK


RULE_FIELDS = ["ssl", "cf.tls_client_auth.cert_verified", "cf.tls_client_auth.cert_revoked"]
RULES = st.lists(
    st.builds(
        Rule,
        st.sampled_from(RULE_FIELDS),
        st.sampled_from(list(Action)),
        st.just(""),
        st.booleans(),
    ),
    max_size=6,
)


def model_rules(rules: list[Rule], fields: dict) -> tuple[tuple[int, ...], Action | None]:
    matched, final = [], None
    for index, rule in enumerate(rules):
        if rule.enabled and fields[rule.expression]:
            matched.append(index)
            final = rule.action
            if rule.action is not Action.LOG:
                break
    return tuple(matched), final


@given(RULES, st.fixed_dictionaries({name: st.booleans() for name in RULE_FIELDS}))
def test_rule_sets_agree_with_a_model_and_would_block_is_logs_as_blocks(rules, fields):
    result = compile_rules(rules).evaluate(fields)
    assert (result.matched, result.action) == model_rules(rules, fields)
    as_blocks = [
        attrs.evolve(r, action=Action.BLOCK) if r.action is Action.LOG else r for r in rules
    ]
    assert result.would_block is (model_rules(as_blocks, fields)[1] is Action.BLOCK)
