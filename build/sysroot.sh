#!/usr/bin/env bash
# Makes build/sysroot/ARCH: Debian's lua5.1 and the libraries it needs, unpacked for
# qemu-user (`qemu-ARCH -L build/sysroot/ARCH build/sysroot/ARCH/usr/bin/lua5.1`).
# Usage: build/sysroot.sh ARCH...   (armel armhf arm64 mipsel; amd64 is a no-op)
#
# Uses a private apt state under build/cache/apt (its own package lists for the foreign
# arch), so the machine's dpkg architectures and apt lists stay as they are. The .debs
# are cached in build/cache/debs; a finished sysroot is kept (delete it to remake).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(lua5.1 libc6 libreadline8 libtinfo6 libgcc-s1)
apt_state=$PWD/build/cache/apt
debs=$PWD/build/cache/debs
aptopts() { # aptopts ARCH: apt-get options for a private, single-arch state
	echo -o "APT::Architecture=$1" -o "APT::Architectures::=$1" \
		-o "Dir::State=$apt_state/$1/state" -o "Dir::State::status=$apt_state/$1/status" \
		-o "Dir::Cache=$apt_state/$1/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -q
}
for arch in "$@"; do
	[ "$arch" = amd64 ] && continue
	case $arch in armel | armhf | arm64 | mipsel) ;; *) echo "sysroot.sh: unknown arch $arch" >&2; exit 2 ;; esac
	root=build/sysroot/$arch
	if [ -x "$root/usr/bin/lua5.1" ] && [ -f "$root/.complete" ]; then
		echo "sysroot $root: cached"
		continue
	fi
	mkdir -p "$apt_state/$arch/state/lists/partial" "$apt_state/$arch/cache/archives/partial" "$debs/$arch"
	touch "$apt_state/$arch/status"
	# shellcheck disable=SC2046
	if [ -z "$(ls "$apt_state/$arch/state/lists" | grep -v -e partial -e lock)" ]; then
		# A mirror mid-sync fails an index now and then: retry a few times.
		for try in 1 2 3 4; do
			apt-get $(aptopts "$arch") update >/dev/null && break
			sleep $((try * 3))
			if [ $try = 4 ]; then
				# Go on with the indexes that did arrive (e.g. bookworm without -security).
				ls "$apt_state/$arch/state/lists/" | grep -q "_Packages" ||
					{ echo "sysroot.sh: apt-get update for $arch failed" >&2; exit 1; }
				echo "sysroot.sh: some $arch indexes failed; using the ones that arrived" >&2
			fi
		done
	fi
	(
		cd "$debs/$arch"
		for p in "${pkgs[@]}"; do
			ls "${p}"_*_"$arch".deb >/dev/null 2>&1 || apt-get $(aptopts "$arch") download "$p:$arch" >/dev/null
		done
	)
	rm -rf "$root"
	mkdir -p "$root"
	for d in "$debs/$arch"/*.deb; do dpkg -x "$d" "$root"; done
	touch "$root/.complete"
	echo "sysroot $root: $(ls "$debs/$arch" | tr '\n' ' ')"
done
