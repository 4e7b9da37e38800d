#!/usr/bin/env bash
# What each allocator catches: runs every probe of tests/c/probes.c in a
# process of its own under glibc (no preload: the control), strata's
# default and checked builds, jemalloc, mimalloc and tcmalloc, and prints
# the table of docs/safety.md, with each column's score (probes caught).
#
#   crates/malloc/tests/probes.sh
#
# A probe is caught when its process is stopped by a signal (abort,
# segmentation fault, ...) or the allocator wrote to stderr; it is not
# ("no") when the probe ran to its end silently. Builds both strata
# libraries in release (the checked one in target/checked). The peers are
# Debian's packages; a missing one gets a column of "n/a".
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"

cargo build --release -q -p strata-malloc
CARGO_TARGET_DIR=target/checked cargo build --release -q -p strata-malloc --features checked

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=gnu11 -O1 -g -fno-builtin crates/malloc/tests/c/probes.c -o "$tmp/probes"

lib=/usr/lib/x86_64-linux-gnu
names=(glibc "strata" "strata checked" jemalloc mimalloc tcmalloc)
preloads=(
  ""
  "$root/target/release/libstrata_malloc.so"
  "$root/target/checked/release/libstrata_malloc.so"
  "$lib/libjemalloc.so.2"
  "$lib/libmimalloc.so.2"
  "$lib/libtcmalloc_minimal.so.4"
)

# The verdict of probe $2 under preload $1 (empty: none).
verdict() {
  local preload=$1 probe=$2 rc=0
  if [ -n "$preload" ] && [ ! -e "$preload" ]; then
    echo "n/a"
    return
  fi
  # The preload reaches the probe alone (through env, after timeout):
  # neither this shell nor timeout runs on the allocator under test.
  (
    ulimit -c 0
    if [ -n "$preload" ]; then
      exec timeout 20 env LD_PRELOAD="$preload" "$tmp/probes" "$probe"
    fi
    exec timeout 20 "$tmp/probes" "$probe"
  ) >"$tmp/out" 2>"$tmp/err" || rc=$?
  local msg=""
  [ -s "$tmp/err" ] && msg="message"
  if [ "$rc" = 124 ]; then
    echo "hang"
  elif [ "$rc" -gt 128 ]; then
    echo "yes (SIG$(kill -l $((rc - 128)))${msg:+, $msg})"
  elif [ "$rc" != 0 ]; then
    echo "yes (exit $rc${msg:+, $msg})"
  elif [ -n "$msg" ]; then
    echo "yes (message)"
  elif grep -q "completed" "$tmp/out"; then
    echo "no"
  else
    echo "? (exit 0, no output)"
  fi
}

header="| probe |"
rule="|---|"
for n in "${names[@]}"; do
  header+=" $n |"
  rule+="---|"
done
echo "$header"
echo "$rule"
scores=()
for p in "${preloads[@]}"; do scores+=(0); done
for probe in $("$tmp/probes" list); do
  row="| \`$probe\` |"
  for i in "${!preloads[@]}"; do
    v=$(verdict "${preloads[$i]}" "$probe")
    case $v in yes*) scores[i]=$((scores[i] + 1)) ;; esac
    row+=" $v |"
  done
  echo "$row"
done
total=$("$tmp/probes" list | wc -l)
row="| caught |"
for i in "${!preloads[@]}"; do
  p=${preloads[$i]}
  if [ -n "$p" ] && [ ! -e "$p" ]; then row+=" n/a |"; else row+=" ${scores[$i]} of $total |"; fi
done
echo "$row"
