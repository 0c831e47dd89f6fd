"""Installed packages of the target's environment: which modules, from which distribution.

One discovery for `sweep --scope packages|all`, `sweep --package DIST` and
`audit --scope packages`.  It runs in the target as `TARGET -c` runs (its
own `site`, so a venv's site-packages and .pth path entries count) and
reads each distribution's RECORD: every module file it installed, pure
Python and extensions alike, with the distribution's name and version.
A venv sees its own packages; a venv made with --system-site-packages
also sees the base interpreter's, which are left out (they are the base
interpreter's to sweep).  Installer tooling (pip, setuptools, wheel) is
left out of `--scope packages` and named, so `--package pip` still works.

The same module answers why a module was not found: `import_hint` asks the
target whether it imports the module when `site` runs (a .pth import hook,
as some editable installs use, is invisible to a precomputed sys.path).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from dataclasses import dataclass, field

from ..errors import HarnessError, TargetPythonError
from ..host.target import TargetPython
from .model import Case, import_case, stdlib_import_cases

SCOPES = ("stdlib", "packages", "all")
TIMEOUT_S = 120.0

_DISCOVERY = r"""
import importlib.machinery, importlib.metadata, importlib.util, json, keyword, os, re, sys
wanted = json.loads(sys.argv[1])
suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
base = os.path.join(os.path.realpath(sys.base_prefix), "")
in_venv = sys.prefix != sys.base_prefix
tooling = {"pip", "setuptools", "wheel", "distribute"}
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()

def module_of(parts):
    name = parts[-1]
    if name.endswith(".py"):
        stem, kind = name[:-3], "python"
    else:
        suffix = next((s for s in suffixes if name.endswith(s)), None)
        if suffix is None:
            return None
        stem, kind = name[:-len(suffix)], "extension"
    dotted = list(parts[:-1]) + ([] if stem == "__init__" else [stem])
    if not dotted or not all(p.isidentifier() for p in dotted):
        return None  # scripts, data, *.dist-info, ../bin
    if dotted[-1] == "__main__" or dotted[0].startswith("__editable__"):
        return None
    if any(keyword.iskeyword(p) for p in dotted):
        # numpy ships numpy/typing/tests/data/pass/*.py: files, not modules an
        # `import` statement can name; one such file must not end the sweep
        word = next(p for p in dotted if keyword.iskeyword(p))
        out["skipped"][".".join(dotted)] = ("not importable by name: %r is a Python keyword" % word)
        return None
    return ".".join(dotted), kind

def modules_of(dist):
    found = {}
    for path in dist.files or ():
        if path.parts and path.parts[0] != "..":
            named = module_of(path.parts)
            if named:
                found.setdefault(named[0], (named[1], str(dist.locate_file(path))))
    if not found:  # no RECORD (or an editable install's): the top-level names
        for top in (dist.read_text("top_level.txt") or "").split():
            try:
                spec = importlib.util.find_spec(top)
            except Exception:
                spec = None
            if spec is not None and top.isidentifier():
                origin = spec.origin or ""
                kind = "extension" if origin.endswith(suffixes) else "python"
                found[top] = (kind, origin or None)
                # an editable install's RECORD names only its .pth or finder:
                # its package's submodules are the files under the package
                # (the top-level name alone swept lhpkg and missed lhpkg._leaky)
                for location in spec.submodule_search_locations or ():
                    for name, named in package_files(top, location).items():
                        found.setdefault(name, named)
    return found

def package_files(top, location):
    # modules under one package directory, as a RECORD would list them
    found = {}
    for root, dirs, files in os.walk(location):
        rel = os.path.relpath(root, location)
        parts = [top] + ([] if rel == "." else rel.split(os.sep))
        dirs[:] = sorted(d for d in dirs if d.isidentifier())
        for name in sorted(files):
            named = module_of(tuple(parts) + (name,))
            if named:
                found.setdefault(named[0], (named[1], os.path.join(root, name)))
    return found

out = {"modules": [], "skipped": {}, "distributions": []}
seen, taken = set(), set()
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if not name or norm(name) in seen:
        continue  # the first on sys.path is the one import finds
    seen.add(norm(name))
    if wanted is not None and norm(name) != norm(wanted):
        continue
    where = os.path.realpath(str(dist.locate_file("")))
    if in_venv and os.path.join(where, "").startswith(base):
        out["skipped"][name] = "the base interpreter's package (system site-packages), not the venv's"
        continue
    if wanted is None and norm(name) in tooling:
        out["skipped"][name] = "installer tooling; --package %s sweeps it" % name
        continue
    version = dist.version
    out["distributions"].append({"name": name, "version": version})
    for module, (kind, origin) in sorted(modules_of(dist).items()):
        if module not in taken:
            taken.add(module)
            out["modules"].append({"name": module, "kind": kind, "origin": origin,
                                   "distribution": name, "version": version})
print(json.dumps(out))
"""

_FINDS = ("import importlib.util, sys\n"
          "try:\n    found = importlib.util.find_spec(sys.argv[1]) is not None\n"
          "except Exception:\n    found = False\nprint(int(found))")


@dataclass(frozen=True)
class PackageModule:
    """One importable module an installed distribution provides."""

    name: str
    kind: str                 # python | extension
    origin: str | None
    distribution: str
    version: str

    @property
    def distribution_json(self) -> dict[str, str]:
        return {"name": self.distribution, "version": self.version}


@dataclass(frozen=True)
class PackageListing:
    """What the target's environment holds, and what was left out and why."""

    modules: tuple[PackageModule, ...]
    distributions: tuple[tuple[str, str], ...]          # (name, version)
    skipped: dict[str, str] = field(default_factory=dict)


def package_import_cases(target: TargetPython, scope: str = "stdlib",
                         distributions: list[str] | tuple[str, ...] = ()) -> tuple[list[Case], dict[str, str]]:
    """(`import NAME` cases, {skipped name: why}) for a sweep: the stdlib,
    the environment's packages, both (`scope`), or only `distributions`."""
    check_scope(scope)
    cases: list[Case] = []
    skipped: dict[str, str] = {}
    if not distributions and scope in ("stdlib", "all"):
        cases, skipped = stdlib_import_cases(target)
    listings = ([package_modules(target, d) for d in distributions] if distributions
                else [package_modules(target)] if scope in ("packages", "all") else [])
    stdlib = {c.module for c in cases}
    for listing in listings:
        skipped.update(listing.skipped)
        cases += [import_case(m.name) for m in listing.modules if m.name not in stdlib]
    return cases, skipped


def _site_env() -> dict[str, str]:
    # what `TARGET -c` sees of its own environment: PYTHONPATH is the
    # user's per-run addition, not an installed package
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise HarnessError(f"--scope must be one of {', '.join(SCOPES)} (got {scope!r})")


def package_modules(target: TargetPython, distribution: str | None = None) -> PackageListing:
    """Modules of the target environment's distributions (or of one: `distribution`).

    A `distribution` that is not installed there is a HarnessError naming
    what is installed."""
    listing = _discover(target.executable, distribution)
    if distribution is not None and not listing.distributions:
        everything = _discover(target.executable, None)
        names = ", ".join(sorted(n for n, _ in everything.distributions)) or "none"
        raise HarnessError(f"--package {distribution}: not installed for {target.executable} "
                           f"(installed: {names})")
    return listing


@functools.lru_cache(maxsize=None)
def _discover(executable: str, distribution: str | None) -> PackageListing:
    try:
        proc = subprocess.run([executable, "-c", _DISCOVERY, json.dumps(distribution)],
                              capture_output=True, text=True, timeout=TIMEOUT_S,
                              env=_site_env(), cwd="/")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetPythonError(f"cannot list the packages of {executable}: {exc}") from None
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TargetPythonError(f"cannot list the packages of {executable}: {last}") from None
    return PackageListing(
        modules=tuple(PackageModule(**m) for m in found["modules"]),
        distributions=tuple((d["name"], d["version"]) for d in found["distributions"]),
        skipped=found["skipped"],
    )


def distribution_of(target: TargetPython, module: str | None) -> PackageModule | None:
    """The installed module `module` (its distribution and version), if one provides it."""
    if not module:
        return None
    top = module.split(".")[0]
    if top in target.stdlib_module_names:
        return None
    try:
        listing = _discover(target.executable, None)
    except HarnessError:
        return None
    for entry in listing.modules:
        if entry.name == module:
            return entry
    return None


def distribution_extensions(target: TargetPython, module: str | None) -> tuple[str, ...]:
    """The extension modules of the installed distribution that provides
    `module` (none for the stdlib or a module no distribution installed):
    what the case should have loaded if the package's speed-ups ran."""
    found = distribution_of(target, module)
    if found is None:
        return ()
    listing = _discover(target.executable, None)
    return tuple(m.name for m in listing.modules
                 if m.distribution == found.distribution and m.kind == "extension")


def distribution_json(target: TargetPython, module: str | None) -> dict[str, str] | None:
    """{"name", "version"} of the distribution providing `module` (a result's field)."""
    found = distribution_of(target, module)
    return found.distribution_json if found else None


_NOT_FOUND = re.compile(r"ModuleNotFoundError: No module named '([^']+)'")


def import_hint(target: TargetPython, message: str, site: bool) -> str | None:
    """What to do about a ModuleNotFoundError in `message`, or None.

    Without --site the host starts from the target's sys.path as `site`
    would leave it, which misses modules that only a .pth import hook finds.
    """
    match = _NOT_FOUND.search(message or "")
    if not match:
        return None
    module = match.group(1)
    try:
        proc = subprocess.run([target.executable, "-c", _FINDS, module], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ), cwd="/")
        found = proc.stdout.strip() == "1"
    except (OSError, subprocess.TimeoutExpired):
        return None
    if found and not site:
        return (f"hint: {target.executable} imports {module!r} when `site` runs (a .pth import "
                f"hook, e.g. an editable install): rerun with --site")
    if not found:
        return (f"hint: {module!r} is not importable by {target.executable} even with `site`: "
                f"install it there ({target.executable} -m pip install ...) or add its "
                f"directory to PYTHONPATH")
    return None
