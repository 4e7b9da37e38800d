#!/usr/bin/env bash
# Boots a Linux kernel under qemu (TCG: no KVM needed) with this machine's
# root file system shared read-write over 9p, runs one shell script inside
# it (chrooted into the shared root, so the same binaries and libraries run
# as on the host), and exits with that script's exit status.
#
#   tests/kernels/boot.sh [options] KERNEL SCRIPT [MEM]
#
#   KERNEL          a bzImage with virtio and 9p as modules or built in
#                   (Debian's linux-image-amd64 works)
#   SCRIPT          run with /bin/sh inside the guest; a path on the host,
#                   not under /tmp (the guest mounts its own tmpfs there)
#   MEM, --mem M    guest memory (default $STRATA_KERNEL_MEM or 4G)
#   --cpus N        virtual CPUs (default $STRATA_KERNEL_CPUS or the host's)
#   --modules DIR   the kernel's modules directory, the one that holds
#                   modules.dep (default: lib/modules/VERSION next to the
#                   kernel's boot/ directory, as dpkg-deb -x lays out a
#                   kernel package, else /lib/modules/VERSION)
#   --timeout S     stop qemu after S seconds (default
#                   $STRATA_KERNEL_TIMEOUT or 1500)
#   --cpu MODEL     qemu's CPU model (default $STRATA_KERNEL_QEMU_CPU or
#                   qemu64)
#   --append ARGS   more kernel command-line arguments (default
#                   $STRATA_KERNEL_APPEND), e.g. transparent_hugepage=madvise
#
# Exit status: the script's; 3 if the guest did not report one (kernel
# panic, failed 9p mount, timeout), with the console's last lines on
# stderr; 2 for a usage or set-up error.
set -euo pipefail

die() { echo "boot.sh: $*" >&2; exit 2; }

mem=${STRATA_KERNEL_MEM:-4G}
cpus=${STRATA_KERNEL_CPUS:-$(nproc)}
timeout_s=${STRATA_KERNEL_TIMEOUT:-1500}
# qemu64 (x86-64 baseline): programs run 1.5-2.5x faster under TCG than
# with -cpu max, whose AVX2 glibc picks for its string functions.
qemu_cpu=${STRATA_KERNEL_QEMU_CPU:-qemu64}
append=${STRATA_KERNEL_APPEND:-}
moddir=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --modules) moddir=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --cpu) qemu_cpu=$2; shift 2 ;;
    --append) append=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 2 ] && [ ${#args[@]} -le 3 ] || die "usage: boot.sh [options] KERNEL SCRIPT [MEM] (--help)"
kernel=$(readlink -f "${args[0]}")
script=$(readlink -f "${args[1]}")
[ ${#args[@]} -eq 3 ] && mem=${args[2]}
[ -f "$kernel" ] || die "no kernel at ${args[0]}"
[ -f "$script" ] || die "no script at ${args[1]}"
case "$script" in /tmp/*) die "the script must not be under /tmp (the guest has its own /tmp)" ;; esac

command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is needed (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio is needed (apt-get install cpio)"
busybox=$(command -v busybox) || die "busybox is needed (apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
  die "$busybox is dynamically linked; the initramfs needs a static one (apt-get install busybox-static)"
fi

# The kernel's release string: from the file name (vmlinuz-VERSION), else
# from the bzImage header (a pointer at 0x20e to the version string).
kernel_version() {
  local name off
  name=$(basename "$1")
  case "$name" in
    vmlinuz-*) echo "${name#vmlinuz-}"; return ;;
  esac
  off=$(od -An -tu2 -j 526 -N 2 "$1" | tr -d ' ')
  dd if="$1" bs=1 skip=$((off + 512)) count=128 status=none | tr '\0' ' ' | cut -d' ' -f1
}
ver=$(kernel_version "$kernel")
[ -n "$ver" ] || die "cannot tell the version of $kernel"
if [ -z "$moddir" ]; then
  beside=$(dirname "$(dirname "$kernel")")/lib/modules/$ver
  if [ -f "$beside/modules.dep" ]; then moddir=$beside; else moddir=/lib/modules/$ver; fi
fi
[ -f "$moddir/modules.dep" ] || die "no modules for $ver: $moddir/modules.dep is missing (--modules DIR)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,host,mods}
cp "$busybox" "$root/bin/busybox"

# The modules that virtio-9p needs, in load order (dependencies first), from
# the kernel's own modules.dep. A module built into the kernel is not in
# modules.dep, and needs no loading.
want=(virtio_pci 9pnet_virtio 9p)
order=()
add() {
  local rel=$1 dep
  for dep in $(awk -v m="$rel:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$moddir/modules.dep"); do
    add "$dep"
  done
  case " ${order[*]-} " in *" $rel "*) ;; *) order+=("$rel") ;; esac
}
for m in "${want[@]}"; do
  rel=$(awk -F: -v m="/$m.ko" 'index($1, m) { print $1; exit }' "$moddir/modules.dep")
  if [ -n "$rel" ]; then
    add "$rel"
  elif ! grep -q "/$m.ko" "$moddir/modules.builtin" 2>/dev/null; then
    die "module $m not found for $ver in $moddir"
  fi
done
: > "$root/mods/list"
for rel in ${order[@]+"${order[@]}"}; do
  name=$(basename "$rel")
  case "$name" in
    *.ko.xz) xz -dc "$moddir/$rel" > "$root/mods/${name%.xz}"; name=${name%.xz} ;;
    *.ko.zst) zstd -qdc "$moddir/$rel" > "$root/mods/${name%.zst}"; name=${name%.zst} ;;
    *.ko.gz) gzip -dc "$moddir/$rel" > "$root/mods/${name%.gz}"; name=${name%.gz} ;;
    *) cp "$moddir/$rel" "$root/mods/$name" ;;
  esac
  echo "$name" >> "$root/mods/list"
done

cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "strata-kernels: error: \$*"; sync; reboot -f; }
for m in \$(cat /mods/list); do insmod /mods/\$m || fail "insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose host /host \
  || fail "mounting the host's root over virtio-9p failed"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t tmpfs tmp /host/tmp
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs shm /host/dev/shm
mount -t devpts devpts /host/dev/pts
echo "strata-kernels: running on \$(uname -r), \$(nproc) cpus, \$(awk '/MemTotal/ { print int(\$2 / 1024) }' /proc/meminfo) MiB"
chroot /host /bin/sh -c 'export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; exec /bin/sh "\$0"' "$script"
echo "strata-kernels: exit status \$?"
sync
reboot -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

# No default devices (no network card, so no iPXE ROM; no VGA): a serial
# console, the 9p share, and qboot instead of SeaBIOS where it is installed
# (it starts the kernel about a second sooner).
firmware=()
[ -f /usr/share/qemu/qboot.rom ] && firmware=(-bios /usr/share/qemu/qboot.rom)
log=$work/console.log
set +e
timeout "$timeout_s" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu "$qemu_cpu" -smp "$cpus" -m "$mem" ${firmware[@]+"${firmware[@]}"} \
  -nodefaults -no-user-config -display none -serial stdio -no-reboot \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 oops=panic${append:+ $append}" \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap \
  < /dev/null 2>&1 | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
rc=$(sed -n 's/.*strata-kernels: exit status \([0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ -z "$rc" ]; then
  {
    if [ "$qemu_rc" -eq 124 ]; then
      echo "boot.sh: $ver: no exit status from the guest: timed out after ${timeout_s}s"
    else
      echo "boot.sh: $ver: no exit status from the guest (qemu exited $qemu_rc); the console's last lines:"
      tail -n 15 "$log" | sed 's/^/  | /'
    fi
  } >&2
  exit 3
fi
exit "$rc"
