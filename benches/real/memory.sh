#!/bin/bash
# Memory behaviour of C programs under LD_PRELOAD, strata beside glibc and
# whichever peers are installed as shared libraries (Debian: apt-get install
# libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4):
#
#   burst SIZE        1 GiB in blocks of SIZE (256 KiB, 64 KiB, 2 KiB) written
#                     and freed, then 5 s of one small malloc/free a
#                     millisecond ("calls"), or of no call at all with the
#                     allocators' background threads on ("quiet":
#                     STRATA_BACKGROUND_RELEASE=1, jemalloc's
#                     background_thread; the others have none): RSS 5 s
#                     later, and whether it is within start + 64 MiB
#   idle_threads      256 threads churn ~2 MB each, free all and wait: RSS
#                     while they idle and after they exit
#   small_footprint   4,000 live objects of 8..408 B replaced 2 million
#                     times: peak RSS (the kernel's, which lags by up to
#                     128 KiB a CPU), and the exact resident size after
#                     its last free (smaps_rollup, x86-64 only)
#   malloc_large      20 buffers of 5..25 MiB replaced 500 times, written
#                     whole: CPU (user, system) and page faults
#
#   cargo build --release -p strata-malloc
#   benches/real/memory.sh [program ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
programs=${*:-burst idle_threads small_footprint malloc_large}
lib=/usr/lib/x86_64-linux-gnu
declare -A so=([glibc]="" [strata]="${STRATA_SO:-$root/target/release/libstrata_malloc.so}")
# Not passed on: a program that has any STRATA_ variable set runs strata's
# option parsing, and that cost small_footprint about 150 KiB more.
unset STRATA_SO
order="glibc strata"
for peer in mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
    if [ -e "$lib/${peer#*:}" ]; then
        so[${peer%%:*}]="$lib/${peer#*:}"
        order="$order ${peer%%:*}"
    fi
done
[ -e "${so[strata]}" ] || { echo "build it first: cargo build --release -p strata-malloc" >&2; exit 1; }
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
for p in $programs; do
    cc -O2 -fno-builtin -pthread "$here/c/$p.c" -o "$bin/$p" -lm
    if [ $p = small_footprint ] && [ "$(uname -m)" = x86_64 ]; then
        cc -O2 -fno-builtin -pthread -DSTOP_AT_END "$here/c/$p.c" -o "$bin/${p}_stop" -lm
    fi
    for a in $order; do
        case $p in
        burst)
            for size in 262144 65536 2048; do
                for calls in 1 0; do
                    if [ $calls = 1 ]; then how=calls; bg=(); else
                        how=quiet; bg=(STRATA_BACKGROUND_RELEASE=1 MALLOC_CONF=background_thread:true)
                    fi
                    out=$(env "${bg[@]}" LD_PRELOAD="${so[$a]}" "$bin/$p" "$size" "$calls")
                    read -r _ start _ _ _ after <<< "$out"
                    met=$([ "$after" -le $((start + 64)) ] && echo "<= start+64 MiB" || echo "MISSED start+64 MiB")
                    printf '%-16s %-9s %-7s %-6s %s  %s\n' "$p" "$a" "$size" "$how" "$out" "$met"
                done
            done ;;
        idle_threads)
            printf '%-16s %-9s %s\n' "$p" "$a" "$(LD_PRELOAD=${so[$a]} "$bin/$p")" ;;
        small_footprint)
            /usr/bin/time -f "$(printf '%-16s %-9s' "$p" "$a") %U user %S sys %R faults %M KiB peak" \
                env LD_PRELOAD="${so[$a]}" "$bin/$p" > /dev/null
            if [ "$(uname -m)" = x86_64 ]; then
                env LD_PRELOAD="${so[$a]}" "$bin/${p}_stop" & pid=$!
                until grep -q '^State:.*T' /proc/$pid/status 2>/dev/null; do sleep 0.01; done
                printf '%-16s %-9s %s KiB exact after the last free\n' "$p" "$a" \
                    "$(awk '/^Rss:/ {print $2}' /proc/$pid/smaps_rollup)"
                kill -CONT $pid; wait $pid
            fi ;;
        *)
            /usr/bin/time -f "$(printf '%-16s %-9s' "$p" "$a") %U user %S sys %R faults %M KiB peak" \
                env LD_PRELOAD="${so[$a]}" "$bin/$p" > /dev/null ;;
        esac
    done
done 2>&1
