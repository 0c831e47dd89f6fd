"""Reports from a real sweep: Markdown, HTML (checked in headless Chromium), JUnit (XSD), JSON;
merging shards; bad input.

One real sweep of the fixture extensions (a leaking, a clean, a crashing, a
single-phase and a multi-phase leaking module) on Python 3.12, in finalize and
subinterpreter mode with few cycles, feeds every test here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
import xmlschema

from fixtures.targets import REPO_ROOT, missing
from harness import SCHEMA_VERSION
from harness.results.load import load_results, result_key

PY_ID = "3.12"
MODULES = ("lh_initleak", "lh_initclean", "lh_crash", "lh_singlephase", "lh_stateleak")
MODES = ("finalize", "subinterpreter")
XSD = REPO_ROOT / "harness" / "data" / "junit.xsd"
#: Screenshots and the report they show are kept here (CI uploads out/ as artifacts).
ARTIFACTS = Path(os.environ.get("LEAK_HARNESS_ARTIFACTS", REPO_ROOT / "out" / "test-artifacts"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def cli(*args: str, env_extra: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`leak-harness ARGS` as a real process, from the checkout."""
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def sweep(fixtures, out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "harness", "sweep", "--python", fixtures.target.executable,
            "--cycles", "8", "--warmup", "2", "--jobs", "2", "--out", str(out), *extra]
    for module in MODULES:
        args += ["--module", module]
    for mode in MODES:
        args += ["--mode", mode]
    env = dict(os.environ, PYTHONPATH=str(fixtures.directory))
    return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def swept(fixture_modules_for, tmp_path_factory):
    """The unsharded sweep and its two shards, run at once: {name: results path}."""
    fixtures = fixture_modules_for(PY_ID)
    folder = tmp_path_factory.mktemp("sweep")
    paths = {name: folder / f"{name}.jsonl" for name in ("all", "shard1", "shard2")}
    procs = {"all": sweep(fixtures, paths["all"]),
             "shard1": sweep(fixtures, paths["shard1"], "--shard", "1/2"),
             "shard2": sweep(fixtures, paths["shard2"], "--shard", "2/2")}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        # 1: the sweep found a leak, as it must with lh_initleak in it
        assert proc.returncode in (0, 1), f"sweep {name} exit {proc.returncode}:\n{stdout}\n{stderr}"
    assert procs["all"].returncode == 1
    return paths


@pytest.fixture(scope="module")
def reports(swept, tmp_path_factory):
    """Every format rendered by the CLI from the unsharded results: {format: path}."""
    folder = tmp_path_factory.mktemp("reports")
    out = {}
    for fmt, name in (("markdown", "report.md"), ("html", "report.html"),
                      ("junit", "junit.xml"), ("json", "report.json")):
        proc = cli("report", str(swept["all"]), "--format", fmt, "-o", str(folder / name))
        assert proc.returncode == 0, proc.stderr
        out[fmt] = folder / name
    return out


# -- the browser ---------------------------------------------------------------------------

def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    missing("Debian's chromium is not installed (apt-get install chromium)")


def chromium(tmp_path: Path, url: str, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.iterdir()))}"
    proc = subprocess.run([chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--enable-logging=stderr", "--v=0", *mode, url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium exit {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def dump_dom(tmp_path: Path, path: Path, fragment: str = "") -> tuple[str, str]:
    proc = chromium(tmp_path, path.as_uri() + fragment, "--dump-dom")
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


class TableRows(HTMLParser):
    """Rows of one <table id=...> as lists of (data-sort, text) per cell, in DOM order."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.depth, self.rows = table_id, 0, []
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and (self.depth or attrs.get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag == "td":
            self._cell = [attrs.get("data-sort"), ""]

    def handle_endtag(self, tag):
        if tag == "table" and self.depth:
            self.depth -= 1
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data


def table_rows(dom: str, table_id: str) -> list[list[tuple]]:
    parser = TableRows(table_id)
    parser.feed(dom)
    return [row for row in parser.rows if row]   # the header row has no <td>


# -- tests ---------------------------------------------------------------------------------

def test_html_report_renders_tables_and_plots_in_chromium(reports, tmp_path):
    dom, stderr = dump_dom(tmp_path, reports["html"])
    assert 'data-scripts="done"' in dom                      # the inline script ran to its end
    assert re.search(r'<div id="script-errors"></div>', dom), "script errors recorded in the page"
    assert "Uncaught" not in stderr, stderr[-2000:]
    for table in ("summary-table", "module-table", "control-table", "problems-table",
                  "unsupported-table"):
        assert re.search(rf'id="{table}"[^>]*data-sortable="ready"|data-sortable="ready"[^>]*id="{table}"',
                         dom), f"{table} was not made sortable"
    modules = {row[0][1] for row in table_rows(dom, "module-table")}
    assert {"lh_initleak", "lh_initclean", "lh_stateleak"} <= modules
    assert {row[0][1] for row in table_rows(dom, "problems-table")} == {"lh_crash"}
    assert "lh_singlephase" in {row[0][1] for row in table_rows(dom, "unsupported-table")}
    # a growth plot per leak (lh_initleak finalize; lh_stateleak in both modes), each an inline SVG
    plots = re.findall(r'<figure class="growth-plot" id="growth-(\d)" data-module="([^"]+)"><svg', dom)
    assert sorted(module for _, module in plots) == ["lh_initleak", "lh_stateleak", "lh_stateleak"]
    # each leak's verdict in the module table links to its plot
    assert sorted(re.findall(r'<a href="#growth-(\d)"', dom)) == sorted(n for n, _ in plots)
    assert re.search(r'<figure class="bar-chart"><svg', dom)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    chromium(tmp_path, reports["html"].as_uri(), "--window-size=1280,2400", f"--screenshot={shot}")
    shutil.copy(reports["html"], ARTIFACTS / "report.html")
    from PIL import Image
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    # the leak colour (#c0392b) of the bar chart and the growth lines is on screen
    leak_red = sum(count for count, rgb in colours if rgb == (0xC0, 0x39, 0x2B))
    assert leak_red > 2000, f"only {leak_red} pixels of the plots' red in {shot}"


def test_html_tables_sort_in_chromium_from_the_link(reports, tmp_path):
    def bytes_column(fragment: str) -> list[float | None]:
        dom, _ = dump_dom(tmp_path, reports["html"], fragment)
        rows = table_rows(dom, "module-table")
        assert rows
        return [float(row[6][0]) if row[6][0] else None for row in rows]

    ascending = bytes_column("#sort=module-table:bytes")
    descending = bytes_column("#sort=module-table:-bytes")
    assert ascending == sorted(ascending) and descending == sorted(descending, reverse=True)
    assert ascending != descending


def test_html_is_self_contained(reports):
    page = reports["html"].read_text()
    assert not re.search(r'<(script|img|link|iframe)[^>]+(src|href)=', page)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(http" not in page


def test_hostile_names_and_messages_are_escaped_everywhere(swept, tmp_path):
    lines = [json.loads(line) for line in swept["all"].read_text().splitlines()]
    leak = next(l for l in lines if l["verdict"] == "leak" and l["role"] == "case")
    crash = next(l for l in lines if l["verdict"] == "crash")
    payload = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
    script = "<script>document.body.setAttribute('data-pwned','script')</script>"
    leak.update(module=f"{script}|mod$x$", case=f"{script}|mod$x$-import")
    crash.update(module=f"{payload}&amp;", message=f"</pre>{payload}\x1b[31m\x00 `code` ```\n```{script}")
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_text("".join(json.dumps(l) + "\n" for l in lines))
    html_path = tmp_path / "hostile.html"
    assert cli("report", str(hostile), "--format", "html", "-o", str(html_path)).returncode == 0
    dom, _ = dump_dom(tmp_path, html_path)
    body_tag = re.search(r"<body[^>]*>", dom).group(0)
    assert "data-pwned" not in body_tag, "a module name or message ran as markup"
    assert 'data-scripts="done"' in body_tag
    assert "&lt;script&gt;document.body" in dom and "&lt;img src=x" in dom

    markdown = cli("report", str(hostile), "--format", "markdown")
    assert markdown.returncode == 0
    outside_code = re.sub(r"(`{3,})text\n.*?\n *\1", "", markdown.stdout, flags=re.S)
    assert not re.search(r"(?<!\\)<(script|img)", outside_code), "raw HTML in the Markdown"
    assert "\x1b" not in markdown.stdout and "\x00" not in markdown.stdout
    assert r"\<script\>" in markdown.stdout and r"\|mod" in markdown.stdout

    junit = cli("report", str(hostile), "--format", "junit")
    assert junit.returncode == 0
    root = ET.fromstring(junit.stdout.encode())
    error = root.find(".//testcase/error")
    assert "\\x1b" in error.text and "\\x00" in error.text   # shown, not written raw
    xmlschema.XMLSchema(str(XSD)).validate(junit.stdout)


def test_markdown_report_summarises_ranks_and_lists_problems(reports):
    text = reports["markdown"].read_text()
    summary = re.search(r"## Summary\n\n(.*?)\n\n", text, re.S).group(1).splitlines()
    finalize = next(r for r in summary if r.startswith("| 3.12.1 | finalize |"))
    subinterp = next(r for r in summary if r.startswith("| 3.12.1 | subinterpreter |"))
    # leak clean unsupported crash timeout error total
    assert finalize.split("|")[3:10] == [" 2 ", " 2 ", " 0 ", " 1 ", " 0 ", " 0 ", " 5 "]
    assert subinterp.split("|")[3:10] == [" 1 ", " 0 ", " 3 ", " 1 ", " 0 ", " 0 ", " 5 "]
    table = re.search(r"## Per module.*?\n\n(.*?)\n\n", text, re.S).group(1).splitlines()[2:]
    verdicts = [row.split("|")[5].strip() for row in table]
    assert verdicts == ["**leak**"] * 3 + ["clean"] * 2
    leak_bytes = [row.split("|")[7].strip() for row in table[:3]]
    as_numbers = [float(b.split()[0].replace(",", "").lstrip("+")) * (1000 if "kB" in b else 1)
                  for b in leak_bytes]
    assert as_numbers == sorted(as_numbers, reverse=True)
    assert "## CPython's own growth per cycle" in text and "| 3.12.1 | finalize | counters | +1,777 |" in text
    assert re.search(r"- \*\*lh\\_crash\*\* — 3\.12\.1, finalize, counters: crash — host killed by SIGSEGV", text)
    assert re.search(r"- \*\*lh\\_singlephase\*\* — 3\.12\.1, subinterpreter, counters: unsupported — "
                     r"ImportError: module lh\\_singlephase does not support loading in subinterpreters", text)


def test_junit_validates_against_the_schema_and_maps_verdicts(reports):
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(str(reports["junit"]))
    root = ET.parse(reports["junit"]).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == \
        ("10", "3", "2", "3")
    cases = {(tc.get("name"), tc.get("classname").split(".")[2]): tc for tc in root.iter("testcase")}
    assert len(cases) == 10          # one per (module, mode, python)
    failure = cases[("lh_initleak", "finalize")].find("failure")
    assert failure.get("type") == "leak" and "blocks" in failure.get("message")
    assert re.search(r"^blocks\s+\+[\d,]+\s+\+1,777\s+\+\d+", failure.text, re.M)  # case, control, excess
    assert cases[("lh_crash", "subinterpreter")].find("error").get("type") == "crash"
    assert "SIGSEGV" in cases[("lh_crash", "finalize")].find("error").text
    assert cases[("lh_singlephase", "subinterpreter")].find("skipped") is not None
    assert list(cases[("lh_initclean", "finalize")]) == [cases[("lh_initclean", "finalize")].find("system-out")]
    suite = root.find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["cpython_own_blocks_per_cycle"] == "1777" and props["mode"] == "finalize"
    # the schema check can fail: a testcase without a name is refused
    broken = reports["junit"].read_text().replace('<testcase name="lh_crash"', "<testcase", 1)
    assert not schema.is_valid(broken)


def test_json_report_reads_back_with_and_without_samples(reports, swept, tmp_path):
    document = json.loads(reports["json"].read_text())
    assert document["schema"] == SCHEMA_VERSION and document["kind"] == "leak-harness report"
    assert document["summary"]["by_verdict"] == {"leak": 3, "clean": 2, "unsupported": 3, "crash": 2,
                                                 "timeout": 0, "error": 0}
    original = load_results([swept["all"]])
    again = load_results([reports["json"]])
    assert sorted(map(result_key, again.lines)) == sorted(map(result_key, original.lines))
    assert all(line["samples"] for line in again.lines if line["verdict"] in ("leak", "clean"))
    small = tmp_path / "small.json"
    assert cli("report", str(swept["all"]), "--format", "json", "--no-samples",
               "-o", str(small)).returncode == 0
    stripped = load_results([small])
    assert all("samples" not in line for line in stripped.lines)
    # what went is the samples, at least their compact size
    samples_size = sum(len(json.dumps(line["samples"], separators=(",", ":"))) for line in again.lines)
    assert samples_size > 0
    assert small.stat().st_size <= reports["json"].stat().st_size - 0.9 * samples_size


def test_union_of_shards_equals_the_unsharded_sweep(swept, tmp_path):
    whole, one, two = (load_results([swept[n]]) for n in ("all", "shard1", "shard2"))
    keys_one, keys_two = ({result_key(l) for l in s.case_lines()} for s in (one, two))
    assert keys_one and keys_two and not keys_one & keys_two
    assert keys_one | keys_two == {result_key(l) for l in whole.case_lines()}
    merged_path = tmp_path / "merged.jsonl"
    proc = cli("merge", str(swept["shard1"]), str(swept["shard2"]), "-o", str(merged_path))
    assert proc.returncode == 0, proc.stderr
    merged = load_results([merged_path])
    verdicts = {result_key(l): l["verdict"] for l in merged.case_lines()}
    assert verdicts == {result_key(l): l["verdict"] for l in whole.case_lines()}
    # each shard measured CPython's own row; the merge keeps one per python and mode
    assert sorted(l["mode"] for l in merged.control_lines()) == ["finalize", "subinterpreter"]
    # `report` with several inputs is the same merge
    direct = cli("report", str(swept["shard1"]), str(swept["shard2"]), "--format", "json")
    via_merge = cli("report", str(merged_path), "--format", "json")
    assert json.loads(direct.stdout)["results"] == json.loads(via_merge.stdout)["results"]


def test_schema_mismatch_and_bad_files_are_one_line_errors(swept, tmp_path):
    lines = swept["all"].read_text().splitlines()
    future = tmp_path / "future.jsonl"
    future.write_text(lines[0] + "\n" + lines[1].replace(f'"schema":{SCHEMA_VERSION}', '"schema":99') + "\n")
    for args, expected in (
            ([str(future)], "future.jsonl:2: results of schema 99, this leak-harness reads schema 1"),
            ([str(tmp_path / "absent.jsonl")], "absent.jsonl does not exist"),
    ):
        proc = cli("report", *args, "--format", "markdown")
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    garbled = tmp_path / "garbled.jsonl"
    garbled.write_text(lines[0] + "\nnot json\n" + lines[1] + "\n")
    proc = cli("merge", str(garbled))
    assert proc.returncode == 2 and "garbled.jsonl:2: not JSON" in proc.stderr
    # a sweep killed mid-write leaves a cut last line: dropped with a note, the rest is kept
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    proc = cli("report", str(cut), "--format", "markdown")
    assert proc.returncode == 0 and "incomplete last line dropped" in proc.stderr


def test_two_venvs_of_one_python_are_two_targets_not_repeats(swept, tmp_path):
    # a sweep of two venvs of 3.13.0 wrote every line twice, one per venv;
    # report kept half ("5 result(s) given more than once: the later file's
    # line kept", from one file).  Here: the same real sweep as if run from
    # a second interpreter path, beside a true repeat of one line
    lines = [json.loads(l) for l in swept["all"].read_text().splitlines()]
    other = [json.loads(json.dumps(l)) for l in lines]
    for line in other:
        line["python"]["executable"] = "/elsewhere/venv/bin/python"
    both = tmp_path / "both.jsonl"
    both.write_text("".join(json.dumps(l) + "\n" for l in lines + other + lines[-1:]))
    merged = load_results([both])
    cases = [l for l in lines if l["role"] == "case"]
    assert len(merged.case_lines()) == 2 * len(cases)
    assert len(merged.control_lines()) == 2 * (len(lines) - len(cases))
    repeats = 1 if lines[-1]["role"] == "case" else 0
    assert merged.notes == ([f"1 result(s) given more than once: the later line kept"] if repeats else [])
    for line in merged.case_lines():  # each case keeps its own interpreter's control
        assert merged.control_for(line)["python"]["executable"] == line["python"]["executable"]
    from harness.report.junit import render_junit
    junit = ET.fromstring(render_junit(merged))
    assert len(junit.findall(".//testcase")) == 2 * len(cases)
    names = {suite.get("name") for suite in junit.findall("testsuite")}
    assert any("/elsewhere/venv/bin/python" in name for name in names), names
