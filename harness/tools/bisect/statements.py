"""A script as top-level statements, and what each needs from the ones before it.

Shrinking a script must not turn a leak into a NameError: if the leaking
call `lh_callleak.f()` is kept, so must be `import lh_callleak`.  Each
top-level statement (a compound one — `def`, `class`, `for`, `with`, `try`
— whole, decorators included) records the names it binds and the names it
reads; `closure()` adds, for every name a kept statement reads, the
statement(s) before it that bind the name: the last unconditional binding
and every conditional one (inside `if`/`for`/`try`/...) after it, since
either may be the one in effect.  Names read inside a function body count
too: the function may run later, and then it needs its globals.
`from __future__` imports are always kept (they must stay first), and a
`from m import *` binds every name nothing else binds.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterable, Sequence

from ...errors import CaseError

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_SIMPLE = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef,
           ast.AsyncFunctionDef, ast.ClassDef)
STAR = "*"


@dataclass(frozen=True)
class Statement:
    """One top-level statement: its text and the names it binds and reads."""

    index: int
    lineno: int
    source: str
    binds: frozenset[str]
    reads: frozenset[str]
    conditional: bool       # binds only on some paths (inside if/for/while/try/with)
    future: bool            # `from __future__ import ...`


def split_statements(source: str, filename: str = "<script>") -> list[Statement]:
    """Top-level statements of `source`, in order; a syntax error is a CaseError."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise CaseError(f"{filename}: cannot split into statements: {exc.msg} (line {exc.lineno})") from None
    lines = source.splitlines(keepends=True)
    statements = []
    for index, node in enumerate(tree.body):
        statements.append(Statement(
            index=index, lineno=_first_line(node), source=_segment(lines, node),
            binds=frozenset(_binds(node)), reads=frozenset(_reads(node)),
            conditional=not isinstance(node, _SIMPLE),
            future=isinstance(node, ast.ImportFrom) and node.module == "__future__",
        ))
    return statements


def closure(statements: Sequence[Statement], chosen: Iterable[int]) -> tuple[int, ...]:
    """`chosen` plus every earlier statement a kept one needs, transitively; sorted."""
    kept = set(chosen) | {s.index for s in statements if s.future}
    pending = list(kept)
    while pending:
        index = pending.pop()
        for need in needs(statements, index):
            if need not in kept:
                kept.add(need)
                pending.append(need)
    return tuple(sorted(kept))


def needs(statements: Sequence[Statement], index: int) -> set[int]:
    """Indices of the earlier statements that bind a name statement `index` reads."""
    found: set[int] = set()
    earlier = statements[:index]
    for name in statements[index].reads:
        binders = [s for s in earlier if name in s.binds]
        if not binders:
            found.update(s.index for s in earlier if STAR in s.binds)
            continue
        for statement in reversed(binders):
            found.add(statement.index)
            if not statement.conditional:
                break
    return found


def render(statements: Sequence[Statement], indices: Iterable[int]) -> str:
    """The program made of the given statements, in their original order."""
    wanted = set(indices)
    return "".join(s.source + "\n" for s in statements if s.index in wanted) or "pass\n"


# -- names --------------------------------------------------------------------
def _first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno, *(d.lineno for d in decorators)])


def _segment(lines: list[str], node: ast.stmt) -> str:
    """The statement's exact text (decorators included; `a; b` cut at the `;`)."""
    decorators = getattr(node, "decorator_list", None) or []
    start = min([(node.lineno, node.col_offset),
                 *((d.lineno, d.col_offset - 1) for d in decorators)])  # the '@'
    end_line, end_col = node.end_lineno, node.end_col_offset
    if start[0] == end_line:
        return lines[start[0] - 1].encode()[start[1]:end_col].decode().rstrip()
    first = lines[start[0] - 1].encode()[start[1]:].decode()
    middle = lines[start[0]:end_line - 1]
    last = lines[end_line - 1].encode()[:end_col].decode()
    return "".join([first, *middle, last]).rstrip()


def _binds(node: ast.stmt) -> set[str]:
    """Module-level names the statement binds (not those local to a def/class/comprehension)."""
    names: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    for child in _walk_module_scope(node):
        if isinstance(child, ast.Import):
            names.update((a.asname or a.name.split(".")[0]) for a in child.names)
        elif isinstance(child, ast.ImportFrom):
            names.update((STAR if a.name == "*" else (a.asname or a.name)) for a in child.names)
        elif isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
        elif isinstance(child, ast.ExceptHandler) and child.name:
            names.add(child.name)
        elif isinstance(child, ast.NamedExpr):
            names.add(child.target.id)
    return names


def _reads(node: ast.stmt) -> set[str]:
    """Every name the statement reads, inside nested functions too (they may run later)."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
    for child in ast.walk(node):
        if isinstance(child, ast.AugAssign) and isinstance(child.target, ast.Name):
            names.add(child.target.id)
    return names


def _walk_module_scope(node: ast.AST):
    """ast.walk that does not enter the bodies of nested scopes (their defaults/decorators
    are still module scope, but bindings inside them are not)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current is not node and isinstance(current, _SCOPES):
            continue
        for child in ast.iter_child_nodes(current):
            if isinstance(child, _COMPREHENSIONS):
                continue
            stack.append(child)
