#!/usr/bin/env bash
# Stands in for cargo inside the guest, as $CARGO for the test executables
# (guest.sh sets it). Some tests build more of the workspace while they run:
# the C ABI tests `cargo build -p strata-malloc` for libstrata_malloc.so and
# .a, the override test `cargo rustc -p strata --example c_dependency
# --features override -- <link arguments>`. run.sh made each of these
# requests on the host before booting and kept cargo's artifact messages in
# RUN_DIR/cargo/<key>.json; this answers a request with its recording (no
# toolchain, lock or freshness check over 9p, and the very artifacts that
# were built with the tests). The key is the subcommand, package, example,
# features and profile; the target directory and triple are the host's, and
# the link arguments after `--` are the ones run.sh used (the same library,
# built from the same C source). A request run.sh did not record fails.
set -euo pipefail
: "${STRATA_KERNEL_RUN_DIR:?guest-cargo.sh: STRATA_KERNEL_RUN_DIR is not set (guest.sh sets it)}"
sub=${1-}
case "$sub" in build|rustc) shift ;; *) echo "guest-cargo.sh: only 'cargo build' and 'cargo rustc' are recorded (got: $*)" >&2; exit 101 ;; esac
profile=dev package= example= features=
while [ $# -gt 0 ]; do
  case "$1" in
    -p|--package) package=$2; shift 2 ;;
    --example) example=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --target-dir|--target) shift 2 ;;
    --message-format=*) shift ;;
    --) break ;;
    *) echo "guest-cargo.sh: unsupported argument $1" >&2; exit 101 ;;
  esac
done
key=$(printf '%s' "$sub-$package-${example:-lib}-${features:-default}-$profile" | tr -c 'A-Za-z0-9_.-' '_')
rec=$STRATA_KERNEL_RUN_DIR/cargo/$key.json
[ -f "$rec" ] || { echo "guest-cargo.sh: no recording $rec: run.sh does not build '$sub -p $package${example:+ --example $example}${features:+ --features $features}' (profile $profile) on the host; add it there" >&2; exit 101; }
cat "$rec"
