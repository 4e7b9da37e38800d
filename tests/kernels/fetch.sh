#!/usr/bin/env bash
# Fetches the kernel of an older Debian release from Debian's package
# archive with apt (a private sources list and state under the cache
# directory: the machine's own apt configuration is not touched), unpacks
# the package with dpkg-deb -x, and prints the path of its vmlinuz. The
# modules land in lib/modules/VERSION beside it, where boot.sh looks.
# A kernel already in the cache is reused without any network access.
#
#   tests/kernels/fetch.sh SUITE        e.g. bullseye (Debian 11, Linux 5.10)
#
# Environment: STRATA_KERNEL_CACHE (default ~/.cache/strata-kernels),
# STRATA_DEBIAN_MIRROR and STRATA_DEBIAN_SECURITY (default: the machine's
# own apt sources for its release and its release's security updates),
# STRATA_KERNEL_REFRESH=1 to look for a newer package even when one is cached.
set -euo pipefail

suite=${1:?usage: fetch.sh SUITE (e.g. bullseye)}
cache=${STRATA_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-kernels}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
dest=$cache/$suite

cached() { find "$dest/boot" -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -V | tail -n 1; }
if [ "${STRATA_KERNEL_REFRESH:-0}" != 1 ] && [ -n "$(cached)" ]; then
  cached
  exit 0
fi

for tool in apt-get apt-cache dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "fetch.sh: $tool is needed (a Debian system)" >&2; exit 2; }
done
[ -f "$keyring" ] || { echo "fetch.sh: $keyring is missing (apt-get install debian-archive-keyring)" >&2; exit 2; }

# The URI of the machine's first apt source that serves SUITE, from its
# one-line (sources.list) or deb822 (*.sources) entries.
debian_uri() {
  local want=$1
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed 's/\[[^]]*\]//' | awk -v s="$want" '$1 == "deb" && $3 == s { print $2; exit }'
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk -v s="$want" '
    BEGIN { RS = ""; FS = "\n" }
    { uri = ""; hit = 0
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^URIs:/) { split($i, u, " "); uri = u[2] }
        if ($i ~ /^Suites:/) { n = split($i, w, " "); for (j = 2; j <= n; j++) if (w[j] == s) hit = 1 }
      }
      if (hit && uri != "") { print uri; exit } }'
}
release=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=${STRATA_DEBIAN_MIRROR:-$(debian_uri "$release" | head -n 1)}
security=${STRATA_DEBIAN_SECURITY:-$(debian_uri "$release-security" | head -n 1)}
[ -n "$mirror" ] || { echo "fetch.sh: no apt source for Debian $release here; set STRATA_DEBIAN_MIRROR" >&2; exit 2; }

apt=$cache/apt/$suite
mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$dest"
echo "deb [signed-by=$keyring] $mirror $suite main" > "$apt/sources.list"
[ -z "$security" ] || echo "deb [signed-by=$keyring] $security $suite-security main" >> "$apt/sources.list"
opts=(
  -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives"
  -o Dir::State::status=/dev/null -o Acquire::Languages=none
  -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
  -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
  -o APT::Sandbox::User=root
)
echo "fetch.sh: apt-get update for $suite" >&2
apt-get "${opts[@]}" -qq update >&2

# linux-image-amd64 depends on the kernel package of the release's newest ABI.
pkg=$(apt-cache "${opts[@]}" depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)
[ -n "$pkg" ] || { echo "fetch.sh: no linux-image-amd64 in $suite" >&2; exit 1; }
echo "fetch.sh: downloading $pkg" >&2
(cd "$apt/archives" && apt-get "${opts[@]}" -qq download "$pkg" >&2)
deb=$(ls -t "$apt/archives/${pkg}"_*.deb | head -n 1)
rm -rf "$dest/boot" "$dest/lib"
dpkg-deb -x "$deb" "$dest"
# The unpacked package needs only the kernel and its modules.
rm -rf "$dest/usr" "$dest/etc" "$apt/archives/${pkg}"_*.deb
[ -f "$dest/lib/modules/${pkg#linux-image-}/modules.dep" ] || depmod -b "$dest" "${pkg#linux-image-}"
cached
