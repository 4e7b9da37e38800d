#!/bin/bash
# Real programs under LD_PRELOAD, strata beside glibc and whichever peers are
# installed as shared libraries (Debian: apt-get install libjemalloc2
# libmimalloc2.0 libtcmalloc-minimal4). Each program runs ROUNDS times per
# allocator, the allocators interleaved; prints the median CPU time
# (user + system), its ratio to glibc, the median wall time and peak RSS.
#
#   cargo build --release -p strata-malloc
#   benches/real/run.sh [ROUNDS] [program ...]     (programs: objects objects-pymalloc hashes sqlite)
#
# objects: CPython building, sorting, encoding and decoding 200k small dicts
# with PYTHONMALLOC=malloc (every object through malloc); objects-pymalloc:
# the same with CPython's own small-object allocator; hashes: perl building
# and sorting a 400k-key hash; sqlite: crates/malloc/tests/data/workload.sql.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-5}
shift || true
programs=${*:-objects objects-pymalloc hashes sqlite}
lib=/usr/lib/x86_64-linux-gnu
declare -A so=([glibc]="" [strata]="${STRATA_SO:-$root/target/release/libstrata_malloc.so}")
order="glibc strata"
for peer in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    if [ -e "$lib/${peer#*:}" ]; then
        so[${peer%%:*}]="$lib/${peer#*:}"
        order="$order ${peer%%:*}"
    fi
done
[ -e "${so[strata]}" ] || { echo "build it first: cargo build --release -p strata-malloc" >&2; exit 1; }
# The interpreter itself, not a version manager's shim script.
python=$(python3 -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for program in $programs; do
    case $program in
    objects) cmd=(env PYTHONMALLOC=malloc "$python" "$here/objects.py") ;;
    objects-pymalloc) cmd=("$python" "$here/objects.py") ;;
    hashes) cmd=(perl "$here/hashes.pl") ;;
    sqlite) cmd=(sqlite3 "$work/db.sqlite" ".read $root/crates/malloc/tests/data/workload.sql") ;;
    *) echo "unknown program $program" >&2; exit 2 ;;
    esac
    : >"$work/times"
    for _ in $(seq "$rounds"); do
        for a in $order; do
            rm -f "$work"/db.sqlite*
            /usr/bin/time -f "$a %U %S %e %M" -o "$work/t" \
                env ${so[$a]:+LD_PRELOAD=${so[$a]}} "${cmd[@]}" >/dev/null
            cat "$work/t" >>"$work/times"
        done
    done
    python3 - "$program" "$work/times" <<'PY'
import collections, statistics as st, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[2]):
    a, u, s, e, m = line.split()
    runs[a].append((float(u) + float(s), float(e), int(m) / 1024))
base = st.median(r[0] for r in runs["glibc"])
for a, v in runs.items():
    cpu = st.median(r[0] for r in v)
    print(f"{sys.argv[1]:17} {a:9} cpu {cpu:7.2f} s {cpu / base:5.2f}x glibc  "
          f"wall {st.median(r[1] for r in v):7.2f} s  peak RSS {st.median(r[2] for r in v):6.1f} MiB  "
          f"(cpu {min(r[0] for r in v):.2f}-{max(r[0] for r in v):.2f}, {len(v)} runs)")
PY
done
