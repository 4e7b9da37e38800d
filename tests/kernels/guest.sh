#!/usr/bin/env bash
# Runs inside the guest that boot.sh starts (run.sh writes the plan and the
# settings, then boots each kernel with a two-line script that calls this).
# Runs every test executable of the plan, the C programs under LD_PRELOAD,
# and the strict-overcommit pass, and writes one line per run to
# OUT/results.tsv (label, result, seconds, detail) and its output to
# OUT/logs/. Exits 0 if nothing failed.
#
#   tests/kernels/guest.sh RUN_DIR OUT_DIR
#
# RUN_DIR holds settings.sh (written by run.sh) and plan.tsv: one test
# executable a line, "label<TAB>working directory<TAB>executable<TAB>strict"
# (strict: "1" to run it again under strict overcommit).
set -euo pipefail
run_dir=$1 out=$2
# shellcheck source=/dev/null
. "$run_dir/settings.sh"
# The host's PATH: the same python3 (with its test suite), sqlite3 and git
# as the tests find on the host, version managers' shims included.
export PATH="$HOST_PATH"
# A few of CPython's test modules, not the host's ten: under emulation the
# ten take longer than a test executable may (TEST_TIMEOUT).
export STRATA_PYTHON_TESTS="$PYTHON_TESTS"
mkdir -p "$out/logs"
results=$out/results.tsv
: > "$results"
failed=0

# Whether a run is wanted: all of them unless ONLY (run.sh --only) is set.
wanted() { [ -z "$ONLY" ] || printf '%s\n' "$1" | grep -Eq -- "$ONLY"; }

say() { echo "matrix[$(uname -r)]: $*"; }

# record LABEL RESULT SECONDS DETAIL: RESULT is "ok", "FAIL ..." (counts as
# a failure) or "known ..." (reported, not counted).
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$results"
  case "$2" in FAIL*) failed=1 ;; esac
  say "$(printf '%-34s %-10s %6ss  %s' "$1" "${2%% *}" "$3" "$4")"
}

# What an exit status means: "exit N", a signal's name, or a timeout.
status_text() {
  local rc=$1
  if [ "$rc" -eq 124 ]; then echo "timeout after ${TEST_TIMEOUT}s"
  elif [ "$rc" -gt 128 ]; then echo "SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
  else echo "exit $rc"; fi
}

# run_logged LOG CWD CMD...: runs CMD in CWD with a time limit, output to
# LOG; sets rc and secs.
run_logged() {
  local log=$1 cwd=$2 start end
  shift 2
  start=$(date +%s.%N)
  set +e
  # (The braces keep bash's own "Segmentation fault" notice out of the console.)
  { (cd "$cwd" && exec timeout -k 10 "$TEST_TIMEOUT" "$@") > "$log" 2>&1 < /dev/null; } 2> /dev/null
  rc=$?
  set -e
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
}

# A libtest executable: its own summary line, or how it died.
run_test() {
  local label=$1 cwd=$2 exe=$3 threads=${4:-$TEST_THREADS} log summary detail
  wanted "$label" || return 0
  log=$out/logs/$(echo "$label" | tr '/: ' '___').log
  run_logged "$log" "$cwd" env CARGO="$CARGO_SHIM" STRATA_KERNEL_RUN_DIR="$run_dir" "$exe" --test-threads="$threads"
  summary=$(grep -a '^test result:' "$log" | tail -n 1 | sed 's/^test result: [A-Za-z]*\. //; s/; 0 measured//; s/; 0 filtered out//; s/; finished in .*//' || true)
  if [ "$rc" -eq 0 ]; then
    record "$label" ok "$secs" "$summary"
    return
  fi
  detail=$(grep -a -E '^test .* \.\.\. FAILED$' "$log" | sed 's/^test //; s/ \.\.\. FAILED$//' | head -n 4 | paste -sd, - || true)
  [ -z "$detail" ] || detail="failed: $detail; "
  if [ -z "$summary" ]; then
    # It died before its summary: the tests that had not reported a
    # result are where to look (with more than one test thread, any of
    # those that were running).
    "$exe" --list --format=terse 2>/dev/null | sed -n 's/: test$//p' | sort > "$log.all" || true
    grep -a -E '^test .* \.\.\. (ok|FAILED|ignored)' "$log" | sed 's/^test //; s/ \.\.\. .*//' | sort > "$log.done" || true
    detail="${detail}unfinished: $(comm -23 "$log.all" "$log.done" | head -n 4 | paste -sd, - || true); "
    rm -f "$log.all" "$log.done"
  fi
  record "$label" "FAIL $(status_text "$rc")" "$secs" "${summary:+$summary; }${detail}log: ${log#"$ROOT"/}"
}

# A C program: exit 0 is a pass; its last line of output is the detail.
run_c() {
  local label=$1 alloc=$2 log last
  wanted "$label" || return 0
  shift 2
  log=$out/logs/$(echo "$label" | tr '/: ' '___').log
  if [ "$alloc" = strata ]; then
    run_logged "$log" "$out" env LD_PRELOAD="$SO" "$@"
  else
    run_logged "$log" "$out" "$@"
  fi
  last=$(grep -a -v '^$' "$log" | tail -n 1 | cut -c1-110 || true)
  if [ "$rc" -eq 0 ]; then
    record "$label" ok "$secs" "$last"
  else
    record "$label" "FAIL $(status_text "$rc")" "$secs" "${last:+$last; }log: ${log#"$ROOT"/}"
  fi
}

say "start; $(nproc) cpus, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB, transparent huge pages: $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)"

# 1. The test executables, as cargo test runs them.
while IFS=$'\t' read -r label cwd exe _strict; do
  run_test "$label" "$cwd" "$exe"
done < "$run_dir/plan.tsv"

# 2. Large blocks that grow by realloc, in C under LD_PRELOAD.
run_c "c/grow_with_gaps glibc" glibc "$BIN/grow_with_gaps"
run_c "c/grow_with_gaps strata" strata "$BIN/grow_with_gaps"
run_c "c/realloc_grow strata" strata "$BIN/realloc_grow" 30 1.25 3

# 3. Strict overcommit: every writable private mapping is charged against
# CommitLimit (here STRICT_RATIO % of the guest's RAM, no swap), and
# MAP_NORESERVE is ignored. Threads get THREAD_STACK_KIB stacks, so that
# glibc's THREADS threads fit with room to spare and what the allocator
# charges per thread decides whether they all start (see README.md).
echo 2 > /proc/sys/vm/overcommit_memory
echo "$STRICT_RATIO" > /proc/sys/vm/overcommit_ratio
say "strict overcommit: ratio $STRICT_RATIO, CommitLimit $(awk '/CommitLimit/ { print int($2 / 1024) }' /proc/meminfo) MiB"

count_started() { sed -n 's/.*started \([0-9]*\) of .*/\1/p' "$1" | tail -n 1; }
threads_detail() {
  sed -n 's/^many_threads: //p' "$1" | sed 's/ (first pthread_create error: none)//; s/first pthread_create error: //' | tail -n 1 | cut -c1-150
}
# many_threads under glibc and under strata, THREADS threads with
# THREAD_STACK_KIB stacks each. glibc must start them all (else the limit
# means nothing); strata must start as many as glibc (with THREADS_CHECK=0,
# STRATA_KERNEL_THREADS_CHECK=0, a shortfall is reported as "known" and not
# counted).
strict_threads() {
  local log_g=$out/logs/many_threads_glibc.log log_s=$out/logs/many_threads_strata.log
  local rc_g secs_g rc_s secs_s n_g n_s
  run_logged "$log_g" "$out" sh -c 'ulimit -s "$1" && exec "$2" "$3"' sh "$THREAD_STACK_KIB" "$BIN/many_threads" "$THREADS"
  rc_g=$rc secs_g=$secs
  run_logged "$log_s" "$out" env LD_PRELOAD="$SO" sh -c 'ulimit -s "$1" && exec "$2" "$3"' sh "$THREAD_STACK_KIB" "$BIN/many_threads" "$THREADS"
  rc_s=$rc secs_s=$secs
  n_g=$(count_started "$log_g") n_s=$(count_started "$log_s")
  if [ "$rc_g" -eq 0 ]; then
    record "strict: c/many_threads glibc" ok "$secs_g" "$(threads_detail "$log_g")"
  else
    record "strict: c/many_threads glibc" "FAIL $(status_text "$rc_g")" "$secs_g" \
      "$(threads_detail "$log_g") (glibc must start them all, else the limit is too low to mean anything)"
  fi
  if [ "$rc_s" -eq 0 ]; then
    record "strict: c/many_threads strata" ok "$secs_s" "$(threads_detail "$log_s")"
  elif [ -z "$n_s" ] || [ "$rc_s" -ne 1 ]; then
    record "strict: c/many_threads strata" "FAIL $(status_text "$rc_s")" "$secs_s" "no count (crashed?): see ${log_s#"$ROOT"/}"
  elif [ "$n_s" -lt "${n_g:-0}" ] && [ "$THREADS_CHECK" != 1 ]; then
    record "strict: c/many_threads strata" "known: $n_s < glibc's ${n_g}" "$secs_s" \
      "$(threads_detail "$log_s") (STRATA_KERNEL_THREADS_CHECK=0: not counted)"
  elif [ "$n_s" -lt "${n_g:-0}" ]; then
    record "strict: c/many_threads strata" "FAIL $n_s < glibc's ${n_g}" "$secs_s" "$(threads_detail "$log_s")"
  else
    record "strict: c/many_threads strata" "FAIL $(status_text "$rc_s")" "$secs_s" "$(threads_detail "$log_s")"
  fi
}
if wanted "strict: c/many_threads"; then strict_threads; fi

# The test executables marked strict, again under the same limit, one test
# at a time: a test may hold up to 2.5 GiB itself (the alignment matrix),
# and two such at once are over the limit with any allocator.
if [ "$STRICT_TESTS" = 1 ]; then
  while IFS=$'\t' read -r label cwd exe strict; do
    if [ "$strict" = 1 ]; then run_test "strict: $label" "$cwd" "$exe" 1; fi
  done < "$run_dir/plan.tsv"
fi
echo 0 > /proc/sys/vm/overcommit_memory

say "done; $(grep -c . "$results") runs, $(grep -c $'\tFAIL' "$results" || true) failed"
exit "$failed"
