"""Regular expressions for `matches`, searched in time linear in the input.

`matches` runs on every request, on text the client chose (the path, the full URI), with a
pattern a tenant chose. Python's `re` backtracks: `(a|a)*$`, `(a+)+$` or `.*.*.*x` take
exponential or high-polynomial time on a few kilobytes, and no syntactic filter ("no nested
quantifiers") catches every such pattern. So `re` is used only to *parse* the pattern; matching
is a Thompson automaton (an NFA whose state sets are cached as DFA states on first use), the
approach of RE2 and of Rust's `regex` crate that wirefilter uses. Cost is at most
O(len(text) x states), typically one dict lookup per character.

The price is the feature set of a finite automaton, which is also wirefilter's: no
backreferences, lookaround, conditionals, atomic groups, possessive quantifiers or word
boundaries. `$` means the end of the text (as in Rust, not "before a final newline" as in
Python), `^` the start; the flags `(?i)`, `(?s)` and `(?x)` work, `(?m)` and `(?a)` do not.
A match anywhere in the text counts (a search, not a full match).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from re import _constants as C  # the parser's vocabulary; stable since Python 3.11
from re import _parser as sre_parser

MAX_PATTERN_LENGTH = 1024  # characters, after the string literal's escapes
MAX_STATES = 1000  # automaton states after expanding counted repetitions like {2,50}
MAX_NESTING = 32  # groups and repetitions inside one another
_MAX_CACHED_SETS = 512  # DFA states kept per pattern before the cache starts over
_MAX_CACHED_WEIGHT = 50_000  # NFA states summed over the cached DFA states

_ALLOWED_FLAGS = re.IGNORECASE | re.DOTALL | re.VERBOSE | re.UNICODE

# Node kinds of the automaton. A node is [kind, payload, next].
_CHAR, _SPLIT, _START, _END, _ACCEPT = range(5)

_CATEGORIES: dict[object, Callable[[str], bool]] = {
    C.CATEGORY_DIGIT: str.isdecimal,
    C.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    C.CATEGORY_SPACE: str.isspace,
    C.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    C.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    C.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
    C.CATEGORY_LINEBREAK: lambda c: c == "\n",
    C.CATEGORY_NOT_LINEBREAK: lambda c: c != "\n",
}

_UNSUPPORTED = {
    C.GROUPREF: "a backreference",
    C.GROUPREF_EXISTS: "a conditional group",
    C.ASSERT: "a lookaround assertion",
    C.ASSERT_NOT: "a lookaround assertion",
    C.ATOMIC_GROUP: "an atomic group",
    C.POSSESSIVE_REPEAT: "a possessive quantifier",
}


class PatternError(ValueError):
    """A pattern outside the supported subset; the message says what was found."""


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    """A function telling whether `pattern` matches anywhere in a text, in linear time."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(f"a pattern of {len(pattern)} characters (at most {MAX_PATTERN_LENGTH})")
    try:
        parsed = sre_parser.parse(pattern)
    except re.error as error:
        raise PatternError(f"an invalid pattern ({error.msg})") from None
    except (RecursionError, OverflowError, ValueError):
        raise PatternError("a pattern too deeply nested or with too large a count") from None
    flags = parsed.state.flags
    _check_flags(flags)
    items = list(parsed)
    if not flags & re.IGNORECASE and items and all(op is C.LITERAL for op, _ in items):
        literal = "".join(chr(code) for _, code in items)
        return lambda text: literal in text
    builder = _Builder()
    start = builder.sequence(items, builder.add(_ACCEPT, None, -1), flags, 0)
    return _Automaton(builder.nodes, start).search


def _check_flags(flags: int) -> None:
    if flags & re.MULTILINE:
        raise PatternError("the flag (?m) (multi-line anchors are not supported)")
    if flags & ~_ALLOWED_FLAGS:
        raise PatternError("an unsupported flag (only (?i), (?s) and (?x) are)")


def _variants(char: str) -> set[str]:
    """The character and its single-character case forms, for (?i)."""
    forms = {char, char.lower(), char.upper(), char.swapcase(), char.casefold()}
    return {form for form in forms if len(form) == 1}


class _Builder:
    """Builds the automaton back to front: each piece is given the node that follows it."""

    def __init__(self) -> None:
        self.nodes: list[list] = []

    def add(self, kind: int, payload: object, following: int) -> int:
        if len(self.nodes) >= MAX_STATES:
            raise PatternError(
                f"a pattern of more than {MAX_STATES} states once repetitions expand"
            )
        self.nodes.append([kind, payload, following])
        return len(self.nodes) - 1

    def sequence(self, items: Iterable, following: int, flags: int, depth: int) -> int:
        if depth > MAX_NESTING:
            raise PatternError(f"groups or repetitions nested more than {MAX_NESTING} deep")
        for op, arg in reversed(list(items)):
            following = self.item(op, arg, following, flags, depth)
        return following

    def item(self, op: object, arg, following: int, flags: int, depth: int) -> int:
        if op in _UNSUPPORTED:
            raise PatternError(_UNSUPPORTED[op])
        if op is C.LITERAL:
            return self.add(_CHAR, _class_predicate([(C.LITERAL, arg)], flags), following)
        if op is C.NOT_LITERAL:
            negated = [(C.NEGATE, None), (C.LITERAL, arg)]
            return self.add(_CHAR, _class_predicate(negated, flags), following)
        if op is C.IN:
            return self.add(_CHAR, _class_predicate(arg, flags), following)
        if op is C.ANY:
            predicate = (lambda c: True) if flags & re.DOTALL else (lambda c: c != "\n")
            return self.add(_CHAR, predicate, following)
        if op is C.AT:
            return self.anchor(arg, following)
        if op is C.BRANCH:
            alternatives = [self.sequence(alt, following, flags, depth + 1) for alt in arg[1]]
            return self.add(_SPLIT, alternatives, -1)
        if op is C.SUBPATTERN:
            _group, add_flags, del_flags, body = arg
            _check_flags(add_flags)
            return self.sequence(body, following, (flags | add_flags) & ~del_flags, depth + 1)
        if op is C.MAX_REPEAT or op is C.MIN_REPEAT:  # laziness cannot change a yes/no answer
            return self.repeat(*arg, following, flags, depth + 1)
        raise PatternError(f"an unsupported construct ({op})")

    def anchor(self, where: object, following: int) -> int:
        if where in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
            return self.add(_START, None, following)
        if where in (C.AT_END, C.AT_END_STRING):
            return self.add(_END, None, following)
        raise PatternError("a word boundary (\\b or \\B)")

    def repeat(self, low: int, high: int, body, following: int, flags: int, depth: int) -> int:
        if high == C.MAXREPEAT:
            loop = self.add(_SPLIT, [], -1)
            self.nodes[loop][1] = [self.sequence(body, loop, flags, depth), following]
            tail = loop
        else:
            tail = following
            for _ in range(high - low):  # x{0,3} is (x(x(x)?)?)?
                tail = self.add(_SPLIT, [self.sequence(body, tail, flags, depth), following], -1)
        for _ in range(low):
            tail = self.sequence(body, tail, flags, depth)
        return tail


def _class_predicate(items: Sequence, flags: int) -> Callable[[str], bool]:
    """Membership in a character class (a literal is a class of one), honouring (?i)."""
    negate = False
    chars: set[str] = set()
    ranges: list[tuple[int, int]] = []
    categories: list[Callable[[str], bool]] = []
    for op, arg in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            chars.add(chr(arg))
        elif op is C.RANGE:
            ranges.append(arg)
        elif op is C.CATEGORY and arg in _CATEGORIES:
            categories.append(_CATEGORIES[arg])
        else:
            raise PatternError(f"an unsupported character class item ({op} {arg})")

    def member(c: str) -> bool:
        code = ord(c)
        return (
            c in chars
            or any(low <= code <= high for low, high in ranges)
            or any(category(c) for category in categories)
        )

    if flags & re.IGNORECASE:
        return lambda c: any(member(form) for form in _variants(c)) != negate
    return lambda c: member(c) != negate


class _Automaton:
    """The NFA, searched by simulating all its paths at once; state sets are cached (a lazy DFA).

    The cache is the only mutable state in the rules engine: it changes how fast an answer
    comes, never the answer, and it is bounded (it starts over when full).
    """

    def __init__(self, nodes: list[list], start: int) -> None:
        self._nodes = nodes
        self._start = start
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []
        self._table: list[dict[str, int]] = []
        self._accept: list[bool] = []
        self._stuck: list[bool] = []
        self._end: list[bool | None] = []
        self._weight = 0
        self._restart_set = self._closure([start], at_start=False, at_end=False)
        self._reset()

    def search(self, text: str) -> bool:
        state = self._initial
        if self._accept[state]:
            return True
        table, accept, stuck = self._table, self._accept, self._stuck
        for char in text:
            following = table[state].get(char)
            if following is None:
                following = self._step(state, char)
            if accept[following]:
                return True
            if stuck[following]:  # an anchored pattern that failed: nothing later can match
                return self._accepts_at_end(following)
            state = following
        return self._accepts_at_end(state) if text else self._accepts_empty()

    def _reset(self) -> None:
        """Empty the cache in place (search() holds references to these lists)."""
        self._ids.clear()
        del self._sets[:], self._table[:], self._accept[:], self._stuck[:], self._end[:]
        self._weight = 0
        self._initial = self._intern(self._closure([self._start], at_start=True, at_end=False))
        self._intern(self._restart_set)

    def _intern(self, members: frozenset[int]) -> int:
        known = self._ids.get(members)
        if known is not None:
            return known
        nodes = self._nodes
        consuming = any(nodes[i][0] == _CHAR for i in members)
        self._ids[members] = len(self._sets)
        self._sets.append(members)
        self._table.append({})
        self._accept.append(any(nodes[i][0] == _ACCEPT for i in members))
        self._stuck.append(not consuming and members == self._restart_set)
        self._end.append(None)
        self._weight += len(members) + 1
        return len(self._sets) - 1

    def _step(self, state: int, char: str) -> int:
        if len(self._sets) >= _MAX_CACHED_SETS or self._weight >= _MAX_CACHED_WEIGHT:
            members = self._sets[state]
            self._reset()
            state = self._intern(members)
        nodes = self._nodes
        seeds = [
            nodes[i][2] for i in self._sets[state] if nodes[i][0] == _CHAR and nodes[i][1](char)
        ]
        seeds.append(self._start)  # a search: a match may also begin at the next character
        following = self._intern(self._closure(seeds, at_start=False, at_end=False))
        self._table[state][char] = following
        return following

    def _accepts_at_end(self, state: int) -> bool:
        known = self._end[state]
        if known is None:
            known = self._finishes(self._sets[state], at_start=False)
            self._end[state] = known
        return known

    def _accepts_empty(self) -> bool:
        return self._finishes(self._sets[self._initial], at_start=True)

    def _finishes(self, members: Iterable[int], *, at_start: bool) -> bool:
        final = self._closure(members, at_start=at_start, at_end=True)
        return any(self._nodes[i][0] == _ACCEPT for i in final)

    def _closure(self, seeds: Iterable[int], *, at_start: bool, at_end: bool) -> frozenset[int]:
        """The nodes reachable without consuming a character; a blocked anchor stays in the set
        so that the end-of-text check can pass it later."""
        nodes = self._nodes
        found: set[int] = set()
        seen: set[int] = set()
        stack = list(seeds)
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            kind, payload, following = nodes[index]
            if kind == _SPLIT:
                stack.extend(payload)
                continue
            found.add(index)
            if (kind == _START and at_start) or (kind == _END and at_end):
                stack.append(following)
        return frozenset(found)
