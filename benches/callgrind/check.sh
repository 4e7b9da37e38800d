#!/usr/bin/env bash
# Instruction counts of the fast paths, against the baseline kept next to
# this script: fails when any count is more than 5% above it, so that the
# fast paths cannot drift. callgrind counts instructions exactly, which a
# shared, noisy machine cannot do with time.
#
#   benches/callgrind/check.sh            # check (CI runs this)
#   benches/callgrind/check.sh --update   # write the present counts as the baseline
#
# Each probe is run at two lengths; the difference divided by the difference
# in iterations is the cost of one iteration (start-up cancels out):
# - c_pair_32, c_pair_2000: malloc(n) + free through the C ABI
#   (crates/malloc/tests/c/pair_loop.c under LD_PRELOAD), loop included;
# - rust_pairs: alloc + dealloc of 16/32/64 bytes through GlobalAlloc
#   (crates/strata/examples/pairs.rs), loop included.
set -euo pipefail
cd "$(dirname "$0")/../.."
baseline=benches/callgrind/baseline
tolerance=5

command -v valgrind >/dev/null || { echo "check.sh: valgrind is needed" >&2; exit 2; }
cargo build --release --quiet -p strata-malloc
cargo build --release --quiet -p strata --example pairs
out=target/callgrind
mkdir -p "$out"
cc -O2 -fno-builtin crates/malloc/tests/c/pair_loop.c -o "$out/pair_loop"
lib=$PWD/target/release/libstrata_malloc.so

# The probes, each taking its iteration count last.
callgrind() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null; }
c_pair() { LD_PRELOAD=$lib callgrind "$out/pair_loop" "$2" "$1"; }
rust_pairs() { callgrind target/release/examples/pairs "$1"; }

# per_iteration PROBE [ARG]: instructions per iteration of the probe.
per_iteration() {
  local a b
  a=$("$@" 2000000 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  b=$("$@" 1000000 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
  echo $(((a - b + 500000) / 1000000))
}

declare -A now
now[c_pair_32]=$(per_iteration c_pair 32)
now[c_pair_2000]=$(per_iteration c_pair 2000)
now[rust_pairs]=$(per_iteration rust_pairs)

if [ "${1:-}" = --update ]; then
  {
    echo "# Instructions per iteration of each probe (benches/callgrind/check.sh --update)."
    for k in c_pair_32 c_pair_2000 rust_pairs; do echo "$k ${now[$k]}"; done
  } >"$baseline"
  cat "$baseline"
  exit 0
fi

status=0
while read -r name base; do
  case $name in '#'* | '') continue ;; esac
  got=${now[$name]:-}
  if [ -z "$got" ]; then
    echo "check.sh: no probe named $name" >&2
    status=1
    continue
  fi
  limit=$((base + base * tolerance / 100))
  if [ "$got" -gt "$limit" ]; then
    verdict="FAIL (more than ${tolerance}% above the baseline)"
    status=1
  else
    verdict=ok
  fi
  printf '%-12s %5s instructions (baseline %s): %s\n' "$name" "$got" "$base" "$verdict"
done <"$baseline"
exit $status
