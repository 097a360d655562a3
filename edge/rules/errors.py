"""The one error the rules language raises: where the text went wrong and what was expected."""

from __future__ import annotations


class RuleSyntaxError(ValueError):
    """A rule expression that does not parse, does not type-check or uses an unsafe regex.

    `column` is 1-based and counts characters from the start of the expression (a newline counts
    as one character); `expected` says what would have been accepted there. Every failure of
    `compile_expression` and `compile_rules` is one of these, whatever the input text.
    """

    def __init__(self, column: int, expected: str, got: str, *, where: str = "") -> None:
        self.column = column
        self.expected = expected
        self.got = got
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}column {column}: expected {expected}, got {got}")

    def located(self, where: str) -> RuleSyntaxError:
        """The same error, prefixed with where the expression came from: `rules[2].expression`."""
        return RuleSyntaxError(self.column, self.expected, self.got, where=where)

    def __reduce__(self):  # picklable despite the keyword-only constructor argument
        return (_rebuild, (self.column, self.expected, self.got, self.where))


def _rebuild(column: int, expected: str, got: str, where: str) -> RuleSyntaxError:
    return RuleSyntaxError(column, expected, got, where=where)
