"""Third-party packages in a venv: found without --site, swept, audited, attributed to their distribution.

The venv is a fresh one of the 3.12 target with a local distribution
(tests/fixtures/lhpkg: `lhpkg._leaky` leaks a list of 16 ints at every
import, `lhpkg._clean` is its twin without the defect) built by pip from
source — no PyPI needed.  Every harness process runs without PYTHONPATH and
without --site: the target's own sys.path has to be enough.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.contract import check_contract
from fixtures.targets import REPO_ROOT, missing

#: beside the clone, or beside the folder of worktrees the clone is one of
LOCAL_PACKAGE = REPO_ROOT / "tests" / "fixtures" / "lhpkg"
LOCAL_MODULES = {"lhpkg", "lhpkg._leaky", "lhpkg._clean"}
#: what the leaky twin strands per import beyond the clean one: the list
#: object, its item array and 16 ints
LEAKED_BLOCKS = 18
CYCLES, WARMUP = "8", "2"


def harness(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def make_venv(base: str, where: Path, *packages: str) -> Path:
    subprocess.run([base, "-m", "venv", str(where)], check=True, timeout=300)
    python = where / "bin" / "python"
    if packages:
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", *packages],
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return python


@pytest.fixture(scope="session")
def venv312(target_for, tmp_path_factory) -> Path:
    """A fresh venv of 3.12 with the local package installed (pip builds its extensions)."""
    base = target_for("3.12").executable
    root = tmp_path_factory.mktemp("venv312")
    source = root / "src"
    shutil.copytree(LOCAL_PACKAGE, source)   # pip builds in-tree: keep the checkout clean
    return make_venv(base, root / "venv", str(source))


def run_json(*args: str) -> dict:
    proc = harness("run", *args, "--cycles", CYCLES, "--warmup", WARMUP, "--json")
    assert proc.returncode in (0, 1, 3), proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def checked(result: dict) -> dict:
    check_contract(json.dumps(result))
    return result


@pytest.mark.parametrize("mode", ["finalize", "legacy-subinterpreter"])
def test_venv_package_is_found_without_site_and_judged_like_a_stdlib_module(venv312, mode):
    leaky = checked(run_json("-c", "import lhpkg._leaky", "--module", "lhpkg._leaky",
                             "--python", str(venv312), "--mode", mode))
    clean = checked(run_json("-c", "import lhpkg._clean", "--module", "lhpkg._clean",
                             "--python", str(venv312), "--mode", mode))
    assert leaky["verdict"] == "leak", leaky["message"]
    assert clean["verdict"] == "clean", clean["message"]
    assert leaky["excess"]["blocks"] - clean["excess"]["blocks"] == LEAKED_BLOCKS
    assert leaky["distribution"] == {"name": "lh-fixture-pkg", "version": "1.2.3"}
    assert leaky["python"]["executable"] == str(venv312)
    # a counters leak names the command that would say where
    assert "rerun with --explain auto" in leaky["message"]
    assert "e+" not in leaky["message"]


def test_pure_python_host_sees_the_venv_too(venv312):
    leaky = run_json("-c", "import lhpkg._leaky", "--python", str(venv312),
                     "--mode", "subinterpreter", "--host", "python")
    assert leaky["host"] == "python" and leaky["verdict"] in ("leak", "clean"), leaky["message"]


def test_sweep_scope_packages_lists_exactly_the_venvs_modules(venv312, tmp_path):
    out = tmp_path / "sweep.jsonl"
    proc = harness("sweep", "--python", str(venv312), "--scope", "packages",
                   "--mode", "legacy-subinterpreter", "--cycles", CYCLES, "--warmup", WARMUP,
                   "--jobs", "2", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr   # lhpkg._leaky leaks
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    cases = {r["module"]: r for r in rows if r["role"] == "case"}
    # the venv's own distribution; not the base interpreter's (memray, ...), not pip
    assert set(cases) == LOCAL_MODULES
    assert cases["lhpkg._leaky"]["verdict"] == "leak"
    assert cases["lhpkg._clean"]["verdict"] == "clean"
    assert all(r["distribution"] == {"name": "lh-fixture-pkg", "version": "1.2.3"}
               for r in cases.values())
    assert "lhpkg._leaky (lh-fixture-pkg 1.2.3)" in proc.stdout
    assert "pip (installer tooling" in " ".join(proc.stdout.split())


def test_sweep_package_takes_every_module_of_one_distribution(venv312, tmp_path):
    out = tmp_path / "sweep.jsonl"
    proc = harness("sweep", "--python", str(venv312), "--package", "LH_Fixture.Pkg",
                   "--mode", "finalize", "--cycles", CYCLES, "--warmup", WARMUP, "--jobs", "2",
                   "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    modules = {json.loads(line)["module"] for line in out.read_text().splitlines()
               if json.loads(line)["role"] == "case"}
    assert modules == LOCAL_MODULES
    missing_dist = harness("sweep", "--python", str(venv312), "--package", "no-such-dist")
    assert missing_dist.returncode == 2
    assert missing_dist.stderr.strip().count("\n") == 0
    assert "no-such-dist" in missing_dist.stderr and "lh-fixture-pkg" in missing_dist.stderr


def test_an_editable_install_is_swept_module_by_module(target_for, tmp_path):
    # pip install -e: the RECORD names only the .pth (or finder) it adds, so
    # discovery had the top-level name alone and swept `lhpkg` clean, never
    # lhpkg._leaky (helper red team: "2 results: 2 clean", exit 0)
    source = tmp_path / "src"
    shutil.copytree(LOCAL_PACKAGE, source)
    python = make_venv(target_for("3.12").executable, tmp_path / "venv", "-e", str(source))
    out = tmp_path / "sweep.jsonl"
    proc = harness("sweep", "--python", str(python), "--package", "lh-fixture-pkg",
                   "--mode", "finalize", "--cycles", CYCLES, "--warmup", WARMUP, "--jobs", "2",
                   "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cases = {r["module"]: r for r in map(json.loads, out.read_text().splitlines()) if r["role"] == "case"}
    assert set(cases) == LOCAL_MODULES
    assert cases["lhpkg._leaky"]["verdict"] == "leak" and cases["lhpkg._clean"]["verdict"] == "clean"


def test_audit_scope_packages_sees_the_venv_not_the_base(venv312):
    proc = harness("audit", "--python", str(venv312), "--scope", "packages", "--json",
                   "--cycles", CYCLES, "--warmup", WARMUP, "--jobs", "2")
    assert proc.returncode == 1, proc.stdout + proc.stderr   # the leaky twin
    audit = json.loads(proc.stdout)
    rows = {m["module"]: m for m in audit["modules"]}
    assert set(rows) == {"lhpkg._leaky", "lhpkg._clean"}   # extension modules only
    assert rows["lhpkg._leaky"]["distribution"]["name"] == "lh-fixture-pkg"
    assert rows["lhpkg._leaky"]["init"] == "multi-phase"
    assert rows["lhpkg._leaky"]["leaks_in"] and not rows["lhpkg._clean"]["leaks_in"]


def test_module_found_only_by_a_pth_import_hook_says_to_use_site(venv312, tmp_path):
    """An import hook installed by a .pth file (as editable installs do) is
    code, not a path entry: without --site the host cannot see it, and the
    error says so; with --site the module runs."""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    (hidden / "lh_hooked.py").write_text("VALUE = 1\n")
    site_packages = next((venv312.parent.parent / "lib").glob("python3.*/site-packages"))
    (site_packages / "lh_finder.py").write_text(
        "import importlib.machinery, sys\n"
        "class Finder:\n"
        "    @classmethod\n"
        "    def find_spec(cls, name, path=None, target=None):\n"
        "        if name != 'lh_hooked':\n"
        "            return None\n"
        f"        return importlib.machinery.PathFinder.find_spec(name, [{str(hidden)!r}])\n"
        "def install():\n"
        "    sys.meta_path.append(Finder)\n")
    pth = site_packages / "lh_hook.pth"
    pth.write_text("import lh_finder; lh_finder.install()\n")
    try:
        without = run_json("-c", "import lh_hooked", "--python", str(venv312))
        assert without["verdict"] == "error"
        assert "No module named 'lh_hooked'" in without["message"]
        assert "rerun with --site" in without["message"]
        with_site = run_json("-c", "import lh_hooked", "--python", str(venv312), "--site")
        assert with_site["verdict"] in ("clean", "leak"), with_site["message"]
        nowhere = run_json("-c", "import lh_nowhere", "--python", str(venv312))
        assert "not importable by" in nowhere["message"] and "--site" not in nowhere["message"]
    finally:
        pth.unlink()


def test_pth_path_entries_count_but_pth_code_runs_once_per_target_not_per_cycle(venv312, tmp_path):
    """A .pth file's directory line is on the host's sys.path; its `import`
    line (code) runs when the harness asks the target for its path, not in
    every cycle; with --site it runs in every interpreter of every cycle."""
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "lh_pth_entry.py").write_text("VALUE = 2\n")
    counter = tmp_path / "pth-ran"
    site_packages = next((venv312.parent.parent / "lib").glob("python3.*/site-packages"))
    pth = site_packages / "lh_entry.pth"
    pth.write_text(f"{extra}\nimport pathlib; pathlib.Path({str(counter)!r}).open('a').write('x')\n")
    try:
        check = ("import sys, lh_pth_entry\n"
                 "assert '' not in sys.path and '.' not in sys.path, sys.path")
        plain = run_json("-c", check, "--python", str(venv312))
        assert plain["verdict"] in ("clean", "leak"), plain["message"]
        ran_plain = len(counter.read_text())
        counter.write_text("")
        with_site = run_json("-c", check, "--python", str(venv312), "--site")
        assert with_site["verdict"] in ("clean", "leak"), with_site["message"]
        cycles = int(CYCLES) + int(WARMUP)
        # a few questions the harness asks the target itself (its sys.path, its build), never
        # one per cycle: the case and its control run 2 x cycles interpreters
        assert 1 <= ran_plain < cycles
        assert len(counter.read_text()) >= 2 * cycles    # case and control, every cycle
    finally:
        pth.unlink()


def test_piped_sweep_table_keeps_the_whole_error(venv312):
    proc = harness("sweep", "--python", str(venv312), "--module", "lh_nowhere_at_all",
                   "--mode", "finalize", "--cycles", "4", "--warmup", "1")
    flat = re.sub(r"[\s│]+", "", proc.stdout)
    assert "ModuleNotFoundError:Nomodulenamed'lh_nowhere_at_all'" in flat, proc.stdout


def test_python_by_version_finds_one_interpreter_or_lists_the_candidates(target_for, tmp_path):
    base = target_for("3.12")
    from harness.host.target import _resolve_executable, target_python
    assert target_python("3.12").version == base.version
    assert target_python(base.version).realpath == base.realpath
    assert target_python("python3.12").version == base.version
    gone = harness("run", "-c", "pass", "--python", "3.9")
    assert gone.returncode == 2 and gone.stderr.strip().count("\n") == 0
    assert "no Python 3.9" in gone.stderr and base.version in gone.stderr
    # a second 3.12 (a venv with its own copy of the binary) on PATH: ambiguous
    copy = tmp_path / "copy"
    subprocess.run([base.executable, "-m", "venv", "--copies", "--without-pip", str(copy)],
                   check=True, timeout=120)
    env = dict(os.environ, PATH=f"{copy / 'bin'}{os.pathsep}{os.environ['PATH']}")
    two = harness("run", "-c", "pass", "--python", "3.12", env=env)
    assert two.returncode == 2 and two.stderr.strip().count("\n") == 0, two.stderr
    assert "ambiguous" in two.stderr and str(copy / "bin") in two.stderr
    assert _resolve_executable(str(copy / "bin" / "python")) == str(copy / "bin" / "python")


def test_python_by_version_fully_probes_only_the_one_it_picks(target_for):
    # the full probe (every importable stdlib module) of each of nine pyenv
    # Pythons was 0.54 s of a 1.2 s `run -c pass --python 3.12`
    from harness.host import target as targets
    base = target_for("3.12")
    targets._probe.cache_clear()
    targets._identity.cache_clear()
    assert targets.target_python("3.12").realpath == base.realpath
    assert targets._probe.cache_info().currsize == 1
    assert targets._identity.cache_info().currsize >= 2   # the other candidates: identity only


def test_doctor_says_per_target_whether_memray_is_importable_there(target_for, tmp_path):
    base = target_for("3.12")
    bare = make_venv(base.executable, tmp_path / "bare")
    proc = harness("doctor", "--python", str(bare))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    memray = next(i for i, line in enumerate(lines) if f"memray in Python {base.label}" in line)
    assert lines[memray].startswith("MISSING")   # a fresh venv has no memray
    assert lines[memray + 1].strip() == f"to fix: {bare} -m pip install memray"
    valgrind = [line for line in lines if line.split()[1:2] == ["valgrind:"]]
    assert len(valgrind) == 1   # one discovery, the backend's (LEAK_HARNESS_VALGRIND or PATH)
    assert "the backend needs" in valgrind[0] or valgrind[0].startswith("MISSING")


@pytest.mark.slow
def test_a_real_pypi_extension_package_in_a_venv_is_found(target_for, tmp_path):
    """msgpack (a Cython extension) from the package index, in a fresh venv.

    Found without --site; and because Cython refuses a second interpreter in
    one process ("Interpreter change detected") and msgpack then swallows the
    ImportError and falls back to pure Python, the result is `unsupported`
    naming the extension, not a measurement of the fallback."""
    base = target_for("3.12").executable
    try:
        python = make_venv(base, tmp_path / "v", "msgpack")
    except AssertionError as exc:
        missing(f"cannot install msgpack from the package index: {str(exc)[-200:]}")
    result = checked(run_json("-c", "import msgpack", "--module", "msgpack",
                              "--python", str(python), "--mode", "legacy-subinterpreter"))
    assert result["verdict"] == "unsupported", result["message"]
    assert "msgpack._cmsgpack in cycle 1 only" in result["message"]
    assert "Interpreter change detected" in result["message"]
    assert result["distribution"]["name"] == "msgpack"


def test_python_given_as_a_venv_folder_a_plain_folder_a_broken_link_or_3(target_for, tmp_path):
    # a venv's folder is its interpreter (as uv takes it); a plain folder, a
    # venv whose base Python is gone and a bare `3` say what they are, one
    # line, exit 2 ("Permission denied", "does not exist", "not found on PATH")
    venv = tmp_path / "v"
    subprocess.run([target_for("3.13").executable, "-m", "venv", "--without-pip", str(venv)],
                   check=True, timeout=120)
    ran = harness("run", "-c", "pass", "--python", str(venv), "--cycles", "4", "--warmup", "0", "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads(ran.stdout)["python"]["executable"] == str(venv / "bin" / "python")
    broken = tmp_path / "broken" / "bin"
    broken.mkdir(parents=True)
    (broken / "python").symlink_to("/nonexistent/python3.13")
    for given, says in ((str(tmp_path), "is a directory, not an interpreter (give its bin/python)"),
                        (str(broken / "python"), "is a symlink to /nonexistent/python3.13, which does not exist"),
                        ("3", "--python 3: no Python 3 on PATH or under pyenv (found: ")):
        proc = harness("run", "-c", "pass", "--python", given)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
