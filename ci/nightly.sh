#!/usr/bin/env bash
# The nightly leak job: sweep -> results.jsonl -> HTML/Markdown/JUnit/JSON reports -> compare
# with ci/baseline.json; exits with the comparison's status (1 = new or grown leaks or new
# crashes, 0 = none). The GitHub workflow (.github/workflows/nightly.yml) runs this same
# script: `--shard i/n --sweep-only` per matrix job, then `--results FILE...` to merge.
#
#   ci/nightly.sh                        sweep every target Python, report, compare
#   ci/nightly.sh --update-baseline      sweep, report, write the baseline instead of comparing
#   ci/nightly.sh --shard 2/4 --sweep-only      one shard of the sweep, results only
#   ci/nightly.sh --results a.jsonl b.jsonl     no sweep: merge these, report, compare
#
# Environment (all optional):
#   LEAK_HARNESS_PYTHONS      target interpreters, space-separated (default: every one found,
#                             one per version and build kind)
#   NIGHTLY_OUT               output folder (default out/nightly)
#   NIGHTLY_MODULES           stdlib modules to sweep, space-separated (default: all of them)
#   NIGHTLY_CASES             catalog cases (harness/data/cases/*.toml) to run: names, "all" (default) or "none"
#   NIGHTLY_MODES             default "finalize subinterpreter legacy-subinterpreter"
#   NIGHTLY_CYCLES / NIGHTLY_WARMUP      default 20 / 5
#   NIGHTLY_JOBS              host processes at once (default: CPU count)
#   NIGHTLY_VALGRIND_MODULES  subset swept with the valgrind backend when valgrind is installed
#                             (default "_json _struct"; "none" to skip; valgrind is slow:
#                             ~3 min per module and Python on 2 loaded cores)
#   NIGHTLY_VALGRIND_CYCLES   default 8
#   NIGHTLY_BASELINE          default ci/baseline.json
#   NIGHTLY_KNOWN             default harness/data/known-leaks.toml
#   NIGHTLY_GROW_THRESHOLD    default 25%
#   NIGHTLY_PYTHON            the Python that runs leak-harness itself (default python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

SHARD="" SWEEP_ONLY=0 UPDATE_BASELINE=0
RESULT_INPUTS=()
OUT="$(abspath "${NIGHTLY_OUT:-$ROOT/out/nightly}")"
while [ $# -gt 0 ]; do
    case "$1" in
        --shard) SHARD="${2:?--shard needs i/n}"; shift 2 ;;
        --sweep-only) SWEEP_ONLY=1; shift ;;
        --update-baseline) UPDATE_BASELINE=1; shift ;;
        --out) OUT="$(abspath "${2:?--out needs a folder}")"; shift 2 ;;
        --results)
            shift
            while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do RESULT_INPUTS+=("$(abspath "$1")"); shift; done
            [ ${#RESULT_INPUTS[@]} -gt 0 ] || { echo "nightly: --results needs at least one file" >&2; exit 2; }
            ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "nightly: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

BASELINE="$(abspath "${NIGHTLY_BASELINE:-$ROOT/ci/baseline.json}")"
KNOWN="$(abspath "${NIGHTLY_KNOWN:-$ROOT/harness/data/known-leaks.toml}")"
MODES="${NIGHTLY_MODES:-finalize subinterpreter legacy-subinterpreter}"
CYCLES="${NIGHTLY_CYCLES:-20}"
WARMUP="${NIGHTLY_WARMUP:-5}"
JOBS="${NIGHTLY_JOBS:-$(nproc 2>/dev/null || echo 2)}"
VALGRIND_MODULES="${NIGHTLY_VALGRIND_MODULES:-_json _struct}"
VALGRIND_CYCLES="${NIGHTLY_VALGRIND_CYCLES:-8}"
CASES="${NIGHTLY_CASES:-all}"
THRESHOLD="${NIGHTLY_GROW_THRESHOLD:-25%}"
PY="${NIGHTLY_PYTHON:-python3}"

# Fail before a long sweep, not after it.
if [ "$SWEEP_ONLY" -eq 0 ] && [ "$UPDATE_BASELINE" -eq 0 ] && [ ! -f "$BASELINE" ]; then
    echo "nightly: no baseline at $BASELINE: run ci/nightly.sh --update-baseline first" >&2
    exit 2
fi

# From here on paths are absolute; run from the checkout so `python -m harness` finds it.
cd "$ROOT"
LH=("$PY" -m harness)
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
log() { printf '[nightly %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# sweep exits 0 (no leak) or 1 (a leak): both are results. Anything else stops the job.
check_sweep() {
    local rc=$1 what=$2
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
        log "$what failed (exit $rc)"; exit "$rc"
    fi
}

if [ ${#RESULT_INPUTS[@]} -gt 0 ]; then
    log "merging ${#RESULT_INPUTS[@]} result file(s)"
    "${LH[@]}" merge "${RESULT_INPUTS[@]}" -o "$RESULTS"
else
    if [ -n "${LEAK_HARNESS_PYTHONS:-}" ]; then
        read -r -a PYTHONS <<<"$LEAK_HARNESS_PYTHONS"
    else
        # one interpreter per (version, debug build): two 3.11 release builds would be
        # the same row of the baseline
        mapfile -t PYTHONS < <("$PY" -c '
from harness.errors import HarnessError
from harness.host.target import installed_pythons, target_python
seen = set()
for exe in installed_pythons():
    try:
        t = target_python(exe)
    except HarnessError:
        continue
    if (t.short_version, t.debug) not in seen:
        seen.add((t.short_version, t.debug))
        print(exe)')
    fi
    [ ${#PYTHONS[@]} -gt 0 ] || { log "no target Python found (set LEAK_HARNESS_PYTHONS)"; exit 2; }
    read -r -a MODE_LIST <<<"$MODES"
    common=(--cycles "$CYCLES" --warmup "$WARMUP" --jobs "$JOBS" --out "$RESULTS")
    # shards split by what each case cost last time (the previous run's results,
    # else the baseline's); an unreadable file is an error, not an even split
    DURATIONS="${NIGHTLY_DURATIONS:-$BASELINE}"
    [ -z "$SHARD" ] || common+=(--shard "$SHARD")
    [ -z "$SHARD" ] || [ ! -e "$DURATIONS" ] || common+=(--durations "$DURATIONS")
    targets=()
    for py in "${PYTHONS[@]}"; do targets+=(--python "$py"); done
    for mode in "${MODE_LIST[@]}"; do targets+=(--mode "$mode"); done
    rm -f "$RESULTS"
    log "pythons: ${PYTHONS[*]}; modes: $MODES; shard: ${SHARD:-all}; out: $OUT"

    modules=()
    for module in ${NIGHTLY_MODULES:-}; do modules+=(--module "$module"); done
    log "sweep: stdlib imports (${NIGHTLY_MODULES:-all modules}), counters backend"
    rc=0; "${LH[@]}" sweep "${targets[@]}" "${modules[@]}" --backend counters "${common[@]}" \
        > "$OUT/sweep.log" || rc=$?
    grep -E '^[0-9]+ results:' "$OUT/sweep.log" >&2 || true
    check_sweep "$rc" "stdlib sweep"

    if [ "$CASES" != "none" ] && ls "$ROOT"/harness/data/cases/*.toml >/dev/null 2>&1; then
        case_names=()
        [ "$CASES" = "all" ] || read -r -a case_names <<<"$CASES"
        log "sweep: curated cases (harness/data/cases/*.toml: $CASES)"
        rc=0; "${LH[@]}" sweep "${targets[@]}" --backend counters "${common[@]}" \
            --catalog "${case_names[@]}" > "$OUT/sweep-catalog.log" || rc=$?
        grep -E '^[0-9]+ results:' "$OUT/sweep-catalog.log" >&2 || true
        check_sweep "$rc" "catalog sweep"
    fi

    if [ "$VALGRIND_MODULES" != "none" ] && command -v valgrind >/dev/null 2>&1 \
            && "$PY" -c 'import sys; from harness.backends import backend_names; sys.exit("valgrind" not in backend_names())'; then
        vg_modules=()
        for module in $VALGRIND_MODULES; do vg_modules+=(--module "$module"); done
        vg_common=(--cycles "$VALGRIND_CYCLES" --warmup 2 --jobs "$JOBS" --out "$RESULTS")
        [ -z "$SHARD" ] || vg_common+=(--shard "$SHARD")
        log "sweep: valgrind backend on $VALGRIND_MODULES (finalize)"
        py_args=()
        for py in "${PYTHONS[@]}"; do py_args+=(--python "$py"); done
        rc=0; "${LH[@]}" sweep "${py_args[@]}" --mode finalize "${vg_modules[@]}" --backend valgrind \
            "${vg_common[@]}" > "$OUT/sweep-valgrind.log" || rc=$?
        grep -E '^[0-9]+ results:' "$OUT/sweep-valgrind.log" >&2 || true
        check_sweep "$rc" "valgrind sweep"
    else
        log "valgrind backend skipped (valgrind or the backend not available, or NIGHTLY_VALGRIND_MODULES=none)"
    fi
    [ -s "$RESULTS" ] || touch "$RESULTS"   # an empty shard is still a shard
fi

if [ "$SWEEP_ONLY" -eq 1 ]; then
    log "results: $RESULTS ($(wc -l < "$RESULTS") lines)"
    exit 0
fi

TITLE="leak-harness nightly $(date -u +%Y-%m-%d)"
for format in html markdown junit json; do
    case "$format" in html) file=report.html ;; markdown) file=report.md ;;
                      junit) file=junit.xml ;; json) file=report.json ;; esac
    "${LH[@]}" report "$RESULTS" --format "$format" --title "$TITLE" -o "$OUT/$file"
done
if "$PY" -c 'import xmlschema' 2>/dev/null; then
    "$PY" -c 'import sys, xmlschema; xmlschema.XMLSchema(sys.argv[1]).validate(sys.argv[2])' \
        harness/data/junit.xsd "$OUT/junit.xml" || { log "junit.xml does not validate against harness/data/junit.xsd"; exit 3; }
fi

if [ "$UPDATE_BASELINE" -eq 1 ]; then
    "${LH[@]}" report "$RESULTS" --format json --no-samples -o "$BASELINE"
    log "baseline written: $BASELINE"
    exit 0
fi
known_args=()
[ ! -f "$KNOWN" ] || known_args=(--known "$KNOWN")
rc=0
"${LH[@]}" compare "$BASELINE" "$RESULTS" "${known_args[@]}" --grow-threshold "$THRESHOLD" \
    --json "$OUT/compare.json" > "$OUT/compare.txt" || rc=$?
cat "$OUT/compare.txt"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    { printf '## Compared with the baseline\n\n```text\n'; cat "$OUT/compare.txt"; printf '```\n\n'
      cat "$OUT/report.md"; } >> "$GITHUB_STEP_SUMMARY"
fi
log "reports in $OUT; compare exit $rc"
exit "$rc"
