#!/usr/bin/env bash
# The kernel matrix: runs the workspace's test executables, C programs
# under LD_PRELOAD=libstrata_malloc.so and a strict-overcommit pass inside
# other Linux kernels booted with qemu (boot.sh), prints a table of every
# run on every kernel, and exits non-zero if any failed. Builds on the host
# (cargo test --no-run, the .so, the C programs); nothing is built in the
# guest. See tests/kernels/README.md.
#
#   tests/kernels/run.sh [--kernel K]... [--debug] [--only REGEX] [--list]
#
#   --kernel K    a kernel to test, instead of $STRATA_KERNELS (default
#                 "bookworm"): a path to a vmlinuz, "bookworm" (Debian 12's
#                 linux-image-amd64 kernel in /boot), a Debian suite such as
#                 "bullseye" (fetched by fetch.sh), or "all" (bookworm and
#                 bullseye)
#   --debug       test the dev-profile executables (those of cargo test)
#                 instead of the release ones: about twice as long
#   --only REGEX  only the runs whose label matches (grep -E), e.g. 'strata/'
#   --list        print the kernels and the plan, boot nothing
#
# Other settings, all from the environment, are listed in README.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/tests/kernels
cd "$root"

kernels_arg=()
profile=${STRATA_KERNEL_PROFILE:-release}
only=${STRATA_KERNEL_ONLY:-}
list_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernels_arg+=("$2"); shift 2 ;;
    --debug) profile=dev; shift ;;
    --release) profile=release; shift ;;
    --only) only=$2; shift 2 ;;
    --list) list_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
if [ ${#kernels_arg[@]} -gt 0 ]; then
  specs=("${kernels_arg[@]}")
else
  read -r -a specs <<< "${STRATA_KERNEL:-${STRATA_KERNELS:-bookworm}}"
fi

# --- Kernels ------------------------------------------------------------
# Debian 12's kernel: the one linux-image-amd64 depends on, else the newest
# vmlinuz in /boot.
installed_kernel() {
  local pkg
  pkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null | sed -n 's/^\(linux-image-[^ ,]*\).*/\1/p')
  if [ -n "$pkg" ] && [ -f "/boot/vmlinuz-${pkg#linux-image-}" ]; then
    echo "/boot/vmlinuz-${pkg#linux-image-}"
  else
    find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1
  fi
}
expanded=()
for spec in "${specs[@]}"; do
  case "$spec" in all) expanded+=(bookworm bullseye) ;; *) expanded+=("$spec") ;; esac
done
kernels=()
for spec in "${expanded[@]}"; do
  case "$spec" in
    bookworm|installed)
      k=$(installed_kernel)
      [ -n "$k" ] || { echo "run.sh: no kernel in /boot (apt-get install linux-image-amd64)" >&2; exit 2; }
      kernels+=("$k") ;;
    */*|vmlinuz*)
      [ -f "$spec" ] || { echo "run.sh: no kernel at $spec" >&2; exit 2; }
      kernels+=("$(readlink -f "$spec")") ;;
    *) kernels+=("$("$here/fetch.sh" "$spec")") ;;
  esac
done

# --- Build on the host ----------------------------------------------------
cargo_profile=()
[ "$profile" = dev ] || cargo_profile=(--profile "$profile")
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
run_dir=$target_dir/kernel-matrix
rm -rf "$run_dir"
mkdir -p "$run_dir/bin"

# Release by default: under TCG the dev-profile executables take about twice
# as long, more than the release build costs. strata-benches is left out:
# its tests exercise no kernel interface that the others miss, and its
# build (jemalloc, mimalloc) is a third of the release build's time.
echo "run.sh: building the test executables ($profile profile)"
cargo test --workspace --exclude strata-benches --no-run --message-format=json "${cargo_profile[@]}" > "$run_dir/cargo-test.json"
# What the tests ask cargo for while they run, asked here and recorded for
# guest-cargo.sh to answer in the guest (the key is the shim's): the C
# library (.so and .a) of the C ABI tests, and the override test's example
# linked against the C library that test builds from c_dependency.c.
mkdir -p "$run_dir/cargo" "$run_dir/cdep"
record_cargo() { # record_cargo SUBCOMMAND PACKAGE EXAMPLE FEATURES [-- RUSTC ARGS]
  local sub=$1 package=$2 example=$3 features=$4 key args
  shift 4
  key=$(printf '%s' "$sub-$package-${example:-lib}-${features:-default}-$profile" | tr -c 'A-Za-z0-9_.-' '_')
  args=(-p "$package")
  [ -z "$example" ] || args+=(--example "$example")
  [ -z "$features" ] || args+=(--features "$features")
  cargo "$sub" "${args[@]}" --message-format=json --profile "$profile" "$@" > "$run_dir/cargo/$key.json"
}
record_cargo build strata-malloc "" ""
cc -std=gnu11 -O1 -fno-builtin -fPIC -Icrates/malloc/include -c crates/strata/tests/c/c_dependency.c -o "$run_dir/cdep/c_dependency.o"
ar rcs "$run_dir/cdep/libstrata_cdep.a" "$run_dir/cdep/c_dependency.o"
record_cargo rustc strata c_dependency override -- -L "native=$run_dir/cdep" -l static=strata_cdep

# plan.tsv: label, working directory (the package's, as under cargo test),
# executable, and 1 for the facade's integration tests, which run again
# under strict overcommit.
python3 - "$run_dir" "$root" "$run_dir/cargo/build-strata-malloc-lib-default-$profile.json" <<'PY'
import json, sys
run_dir, root, so_json = sys.argv[1], sys.argv[2], sys.argv[3]
rows = []
for line in open(f"{run_dir}/cargo-test.json"):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    pkg_dir = m["manifest_path"].rsplit("/", 1)[0]
    short = pkg_dir[len(root) + 1:].removeprefix("crates/") or "."
    kind, name = m["target"]["kind"][0], m["target"]["name"]
    label = f"{short}/{name}" if kind == "test" else f"{short}/{kind}:{name}"
    strict = "1" if short == "strata" and kind == "test" else "0"
    rows.append((0 if kind == "test" else 1, label, pkg_dir, m["executable"], strict))
so = [f for line in open(so_json) for m in [json.loads(line)]
      if m.get("reason") == "compiler-artifact" for f in m.get("filenames", []) if f.endswith("/libstrata_malloc.so")]
with open(f"{run_dir}/plan.tsv", "w") as out:
    for _, label, cwd, exe, strict in sorted(rows):
        out.write(f"{label}\t{cwd}\t{exe}\t{strict}\n")
with open(f"{run_dir}/so", "w") as out:
    out.write(so[0] if so else "")
PY
so=$(cat "$run_dir/so")
[ -f "$so" ] || { echo "run.sh: cargo reported no libstrata_malloc.so" >&2; exit 1; }

for prog in realloc_grow grow_with_gaps many_threads; do
  cc -std=gnu11 -O1 -g -Wall -Wextra -Werror -fno-builtin -pthread \
    "crates/malloc/tests/c/$prog.c" -o "$run_dir/bin/$prog"
done

cat > "$run_dir/settings.sh" <<EOF
ROOT=$root
SO=$so
BIN=$run_dir/bin
CARGO_SHIM=$here/guest-cargo.sh
TEST_THREADS=${STRATA_KERNEL_TEST_THREADS:-2}
TEST_TIMEOUT=${STRATA_KERNEL_TEST_TIMEOUT:-900}
STRICT_RATIO=${STRATA_KERNEL_OVERCOMMIT_RATIO:-80}
THREADS=${STRATA_KERNEL_THREADS:-600}
THREAD_STACK_KIB=${STRATA_KERNEL_THREAD_STACK_KIB:-2048}
THREADS_CHECK=${STRATA_KERNEL_THREADS_CHECK:-1}
STRICT_TESTS=${STRATA_KERNEL_STRICT_TESTS:-1}
ONLY=$(printf %q "$only")
HOST_PATH=$(printf %q "$PATH")
PYTHON_TESTS=$(printf %q "${STRATA_KERNEL_PYTHON_TESTS:-test_list test_dict test_json}")
EOF

echo "run.sh: kernels: ${kernels[*]}"
echo "run.sh: $(wc -l < "$run_dir/plan.tsv") test executables, .so $so"
if [ "$list_only" = 1 ]; then
  cut -f1,3 "$run_dir/plan.tsv" | column -t
  exit 0
fi

# --- Boot each kernel -----------------------------------------------------
summary=$run_dir/summary.tsv
: > "$summary"
status=0
for kernel in "${kernels[@]}"; do
  ver=$(basename "$kernel" | sed 's/^vmlinuz-//')
  out=$run_dir/$ver
  mkdir -p "$out"
  printf '#!/bin/sh\nexec bash %q %q %q\n' "$here/guest.sh" "$run_dir" "$out" > "$out/boot-script.sh"
  echo "run.sh: booting $ver"
  start=$(date +%s)
  set +e
  "$here/boot.sh" "$kernel" "$out/boot-script.sh" 2>&1 | tee "$out/console.log"
  rc=${PIPESTATUS[0]}
  set -e
  took=$(( $(date +%s) - start ))
  [ "$rc" -eq 0 ] || status=1
  if [ -s "$out/results.tsv" ]; then
    sed "s|^|$ver\t|" "$out/results.tsv" >> "$summary"
  fi
  case "$rc" in
    0|1) ;;
    *) printf '%s\t%s\t%s\t%s\t%s\n' "$ver" "(guest)" "FAIL exit $rc" "-" \
         "the guest did not finish (boot.sh exit $rc): see ${out#"$root"/}/console.log" >> "$summary" ;;
  esac
  printf '%s\t%s\t%s\t%s\t%s\n' "$ver" "(total)" "$([ "$rc" -eq 0 ] && echo ok || echo failed)" "$took" \
    "the whole guest: boot, every run, power-off" >> "$summary"
done

# --- Summary --------------------------------------------------------------
echo
echo "Kernel matrix ($profile profile; logs in ${run_dir#"$root"/}/KERNEL/logs):"
{
  printf 'kernel\tbinary\tresult\tseconds\tdetail\n'
  cat "$summary"
} | awk -F'\t' '{ printf "%-16s %-36s %-22s %7s  %s\n", $1, $2, $3, $4, $5 }'
passed=$(awk -F'\t' '$2 !~ /^\(/ && $3 == "ok"' "$summary" | wc -l)
failed=$(awk -F'\t' '$3 ~ /^FAIL/' "$summary" | wc -l)
known=$(awk -F'\t' '$3 ~ /^known/' "$summary" | wc -l)
echo
[ "$known" -eq 0 ] || echo "$known known failure(s) not counted (see the rows marked known)"
echo "matrix: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit "$status"
