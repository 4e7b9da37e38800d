#!/bin/bash
# Programs under LD_PRELOAD, strata beside glibc and whichever peers are
# installed as shared libraries (Debian: apt-get install libjemalloc2
# libmimalloc2.0 libtcmalloc-minimal4). Each program runs ROUNDS times per
# allocator, the allocators interleaved; prints per allocator the median
# wall time, CPU time (user + system) and peak RSS, then strata over the best
# peer in each, and at the end the geometric means of those ratios over the
# programs run. On a loaded machine CPU time is the steadier figure; wall
# time is what a multi-threaded program's user waits for.
#
#   cargo build --release -p strata-malloc
#   benches/real/run.sh [ROUNDS] [program | classic | programs ...]
#
# classic: the classic allocator workloads, written here from their
# published descriptions (sources in c/, built with the system's cc):
#   alloc-test     2 threads, random alloc/free of 8 B..~1 KiB in a working set
#   cfrac          bignum arithmetic: many small short-lived blocks
#   espresso       sets of bit vectors: mixed sizes, arrays grown by realloc
#   malloc-simple  glibc's tight malloc/free loops of one size at a time
#   malloc-thread  glibc's: 4 threads, each random sizes in its working set
#   larson         a server: threads replace random blocks, then hand them on
#   rptest         cross-thread churn of 16 B..16 KB blocks, a time wheel
#   xmalloc-test   2 threads only malloc, 2 threads only free
#   malloc-large   5-25 MiB blocks, written whole
#   mstress        phases of threads sharing blocks through common slots
#   mleak          4,000 short-lived threads, each leaving one small block
#   sh6bench       SmartHeap's: runs of one size, 1..1000 B, freed in two
#                  orders, each size left alone until the next round
#   sh8bench       the same with a quarter of each run freed by another thread
#   cache-thrash   Hoard's: 2 threads each rewriting its own 8-byte objects
# programs: real programs. objects: CPython building, sorting, encoding and
# decoding 200k small dicts with PYTHONMALLOC=malloc (every object through
# malloc); objects-pymalloc: the same with CPython's own small-object
# allocator; hashes: perl building and sorting a 400k-key hash; sqlite:
# crates/malloc/tests/data/workload.sql.
# Default: both groups.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${1:-5}
shift || true
classic="alloc-test cfrac espresso malloc-simple malloc-thread larson rptest xmalloc-test malloc-large mstress mleak sh6bench sh8bench cache-thrash"
real="objects objects-pymalloc hashes sqlite"
programs=
for p in ${*:-classic programs}; do
    case $p in
    classic) programs="$programs $classic" ;;
    programs) programs="$programs $real" ;;
    *) programs="$programs $p" ;;
    esac
done
lib=/usr/lib/x86_64-linux-gnu
declare -A so=([glibc]="" [strata]="${STRATA_SO:-$root/target/release/libstrata_malloc.so}")
order="glibc strata"
for peer in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    if [ -e "$lib/${peer#*:}" ]; then
        so[${peer%%:*}]="$lib/${peer#*:}"
        order="$order ${peer%%:*}"
    else
        echo "${peer%%:*}: $lib/${peer#*:} not installed, not run" >&2
    fi
done
[ -e "${so[strata]}" ] || { echo "build it first: cargo build --release -p strata-malloc" >&2; exit 1; }
# The interpreter itself, not a version manager's shim script.
python=$(python3 -c 'import sys; print(sys.executable)')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/summary.py" <<'PY'
# summary.py RUNS [PROGRAM]: the lines of PROGRAM, or without it the
# geometric means of strata / best peer over every program in RUNS.
import collections, math, statistics as st, sys
runs = collections.defaultdict(lambda: collections.defaultdict(list))
failed = collections.defaultdict(set)
for line in open(sys.argv[1]):
    f = line.split()
    if f[2] == "failed":
        failed[f[0]].add(f[1])
        continue
    p, a, u, s, e, m = f
    runs[p][a].append((float(e), float(u) + float(s), int(m) / 1024))
only = sys.argv[2] if len(sys.argv) > 2 else None
names = ("wall", "cpu", "peak RSS")
ratios = []
for p, by in runs.items():
    med = {a: tuple(st.median(r[i] for r in v) for i in range(3)) for a, v in by.items()}
    peers = {a: v for a, v in med.items() if a != "strata"}
    best = [min(peers, key=lambda a: peers[a][i]) for i in range(3)] if peers else []
    if p != only:
        if best and "strata" in med and "strata" not in failed[p]:
            ratios.append([med["strata"][i] / peers[best[i]][i] for i in range(3)])
        continue
    for a, (wall, cpu, rss) in med.items():
        spread = lambda i: f"{min(r[i] for r in by[a]):.2f}-{max(r[i] for r in by[a]):.2f}"
        print(f"{p:14} {a:9} wall {wall:6.2f} s  cpu {cpu:6.2f} s  peak RSS {rss:7.1f} MiB  "
              f"(wall {spread(0)}, cpu {spread(1)}, {len(by[a])} runs)")
    for a in sorted(failed[p]):
        print(f"{p:14} {a:9} FAILED in at least one run")
    if best and "strata" in med:
        s = med["strata"]
        unit = ("s", "s", "MiB")
        print(f"{p:14} strata / best peer: " + ", ".join(
            f"{names[i]} {s[i] / peers[best[i]][i]:.2f}x ({best[i]} {peers[best[i]][i]:.2f} {unit[i]})"
            for i in range(3)))
if only is None and ratios:
    g = [math.exp(sum(math.log(r[i]) for r in ratios) / len(ratios)) for i in range(3)]
    print(f"geometric mean over {len(ratios)} programs, strata / best peer: "
          + ", ".join(f"{names[i]} {g[i]:.2f}x" for i in range(3)))
PY
: >"$work/all"
for program in $programs; do
    case $program in
    objects) cmd=(env PYTHONMALLOC=malloc "$python" "$here/objects.py") ;;
    objects-pymalloc) cmd=("$python" "$here/objects.py") ;;
    hashes) cmd=(perl "$here/hashes.pl") ;;
    sqlite) cmd=(sqlite3 "$work/db.sqlite" ".read $root/crates/malloc/tests/data/workload.sql") ;;
    alloc-test) cmd=("$work/alloc_test" 2 5000000) ;;
    sh6bench) cmd=("$work/sh_bench" 2 40 0) ;;
    sh8bench) cmd=("$work/sh_bench" 2 40 1) ;;
    cfrac | espresso | malloc-simple | malloc-thread | larson | rptest | xmalloc-test | \
        malloc-large | mstress | mleak | cache-thrash) cmd=("$work/${program//-/_}") ;;
    *) echo "unknown program $program" >&2; exit 2 ;;
    esac
    if [[ ${cmd[0]} == "$work"/* ]]; then
        src="$here/c/$(basename "${cmd[0]}").c"
        cc -O2 -fno-builtin -pthread "$src" -o "${cmd[0]}" -lm
    fi
    for _ in $(seq "$rounds"); do
        for a in $order; do
            rm -f "$work"/db.sqlite*
            if /usr/bin/time -f "$program $a %U %S %e %M" -o "$work/t" \
                timeout 300 env ${so[$a]:+LD_PRELOAD=${so[$a]}} "${cmd[@]}" >/dev/null; then
                cat "$work/t" >>"$work/all"
            else
                echo "$program under $a failed (exit $?)" >&2
                echo "$program $a failed" >>"$work/all"
            fi
        done
    done
    python3 "$work/summary.py" "$work/all" "$program"
done
python3 "$work/summary.py" "$work/all"
