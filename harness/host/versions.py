"""Python version ranges such as '>=3.12, <3.14': one parser for case files and known leaks.

Each comparison is made on the precision it is written with: `<=3.13` admits
3.13.5, `==3.12` admits every 3.12.x and `<3.13` excludes 3.13.0.  A wrong
part is a `VersionRangeError`; the caller prefixes where it was read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPARISON = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+){0,2})\s*$")
_OPERATORS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}


class VersionRangeError(ValueError):
    """A part of a version range is not a comparison such as '>=3.12'."""


@dataclass(frozen=True)
class VersionRange:
    """Comma-separated comparisons, all of which a version must pass."""

    text: str
    clauses: tuple[tuple[str, tuple[int, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> "VersionRange":
        if not text.strip():
            raise VersionRangeError("an empty range admits every Python; leave the field out instead")
        clauses = []
        for part in text.split(","):
            match = _COMPARISON.match(part)
            if not match:
                raise VersionRangeError(f"{part.strip()!r} is not a version specifier such as "
                                        f"'>=3.12' or '<3.14' (combine them with commas)")
            clauses.append((match.group(1), tuple(int(n) for n in match.group(2).split("."))))
        return cls(text, tuple(clauses))

    def admits(self, version: str | tuple[int, ...]) -> bool:
        """Whether `version` ('3.13.0', '3.14.0a1' or (3, 13, 0)) passes every clause."""
        numbers = (tuple(int(n) for n in re.findall(r"\d+", version)[:3])
                   if isinstance(version, str) else tuple(version)[:3])
        return all(_OPERATORS[op](numbers[:len(bound)], bound) for op, bound in self.clauses)
