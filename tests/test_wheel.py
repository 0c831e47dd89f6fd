"""The wheel carries its data: installed (not editable) into a fresh venv, away from the checkout,
leak-harness finds its suppressions, case catalog, known leaks and JUnit schema inside itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fixtures.targets import REPO_ROOT, missing

#: what the shipped data is, relative to the package
SHIPPED = ("harness/data/known-leaks.toml", "harness/data/junit.xsd",
           "harness/data/suppressions/base.supp", "harness/data/suppressions/cpython-3.12.supp",
           "harness/data/cases/json-roundtrip.toml")


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin directory, a working directory outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"   # a copy: building leaves build/ and *.egg-info behind
    source.mkdir()
    for name in ("harness", "pyproject.toml", "README.md"):
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, source / name)
    dist = root / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist),
                            str(source)], capture_output=True, text=True, timeout=600)
    if built.returncode != 0:
        missing(f"cannot build the wheel (setuptools from the package index?): {built.stderr[-300:]}")
    wheel = next(dist.glob("leak_harness-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert set(SHIPPED) <= names, sorted(set(SHIPPED) - names)
    venv = root / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=1200)
    if installed.returncode != 0:
        missing(f"cannot install the wheel's dependencies: {installed.stderr[-300:]}")
    work = root / "elsewhere"
    work.mkdir()
    return venv / "bin", work


def lh(installed_wheel, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    bin_dir, work = installed_wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(bin_dir / "leak-harness"), *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)


def site_packages(installed_wheel) -> Path:
    bin_dir, _ = installed_wheel
    return next((bin_dir.parent / "lib").glob("python3.*/site-packages"))


@pytest.mark.slow
def test_wheel_lists_its_shipped_suppressions(installed_wheel, target_for):
    py = target_for("3.12").executable
    proc = lh(installed_wheel, "suppressions", "list", "--python", py)
    assert proc.returncode == 0, proc.stderr
    shipped = site_packages(installed_wheel) / "harness" / "data" / "suppressions"
    listed = [line.split("  (")[0] for line in proc.stdout.splitlines()]
    assert listed == [str(shipped / "base.supp"), str(shipped / "cpython-3.12.supp")]
    assert str(REPO_ROOT) not in proc.stdout


@pytest.mark.slow
def test_wheel_runs_a_catalog_case_by_name(installed_wheel, target_for):
    py = target_for("3.12").executable
    proc = lh(installed_wheel, "run", "json-roundtrip", "--python", py, "--cycles", "4",
              "--warmup", "1", "--json")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["case"] == "json-roundtrip" and result["verdict"] in ("clean", "leak")


@pytest.mark.slow
def test_wheel_compares_with_its_shipped_known_leaks(installed_wheel):
    baseline = REPO_ROOT / "ci" / "baseline.json"
    proc = lh(installed_wheel, "compare", str(baseline), str(baseline), "--known", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    comparison = json.loads(proc.stdout)
    assert comparison["known"], "the baseline's documented leaks match the shipped list"
    assert all("known-leaks.toml" in k["known"]["where"] for k in comparison["known"])


@pytest.mark.slow
def test_wheel_runs_valgrind_with_its_shipped_suppressions(installed_wheel, target_for):
    if shutil.which(os.environ.get("LEAK_HARNESS_VALGRIND") or "valgrind") is None:
        missing("valgrind not installed")
    py = target_for("3.12").executable
    proc = lh(installed_wheel, "run", "-c", "pass", "--python", py, "--backend", "valgrind",
              "--cycles", "4", "--warmup", "1", "--json")
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    used = [s["file"] for s in result["evidence"]["valgrind"]["suppressions"]]
    shipped = str(site_packages(installed_wheel) / "harness" / "data" / "suppressions")
    assert any(f == f"{shipped}/cpython-3.12.supp" for f in used), used
    matched = {s["file"]: s["matched"] for s in result["evidence"]["valgrind"]["suppressions"]}
    assert matched[f"{shipped}/cpython-3.12.supp"] > 0   # CPython's own leaks are hidden
