#!/usr/bin/env bash
# Stands in for cargo inside the guest, as $CARGO for the test executables
# (guest.sh sets it). The C ABI tests run `cargo build -p strata-malloc
# --message-format=... --profile P [--target-dir D] [--target T]` to find
# libstrata_malloc.so; run.sh built it on the host before booting, so this
# answers with the artifact message naming it instead of running cargo (no
# toolchain, lock or freshness check over 9p, and the very .so that was
# built with the tests). Any other use is an error.
set -euo pipefail
profile=dev target_dir= triple= package=
[ "${1-}" = build ] || { echo "guest-cargo.sh: only 'cargo build -p strata-malloc' is supported in the guest (got: $*)" >&2; exit 101; }
shift
while [ $# -gt 0 ]; do
  case "$1" in
    -p|--package) package=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --target-dir) target_dir=$2; shift 2 ;;
    --target) triple=$2; shift 2 ;;
    --message-format=*) shift ;;
    *) echo "guest-cargo.sh: unsupported argument $1" >&2; exit 101 ;;
  esac
done
[ "$package" = strata-malloc ] || { echo "guest-cargo.sh: only -p strata-malloc is supported (got: ${package:-none})" >&2; exit 101; }
: "${target_dir:=${CARGO_TARGET_DIR:?guest-cargo.sh: no --target-dir and no CARGO_TARGET_DIR}}"
case "$profile" in dev|test) dir=debug ;; bench) dir=release ;; *) dir=$profile ;; esac
so=$target_dir/${triple:+$triple/}$dir/libstrata_malloc.so
[ -f "$so" ] || { echo "guest-cargo.sh: $so was not built on the host (tests/kernels/run.sh builds it)" >&2; exit 101; }
printf '{"reason":"compiler-artifact","package_id":"strata-malloc","filenames":["%s"],"fresh":true}\n' "$so"
printf '{"reason":"build-finished","success":true}\n'
