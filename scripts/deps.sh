#!/usr/bin/env bash
# Installs the Debian 12 packages Flotilla builds, runs and tests with.
# Does nothing when they are all present already.
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config
	libnng-dev protobuf-c-compiler libprotobuf-c-dev liblmdb-dev
	libsodium-dev libjansson-dev libsystemd-dev
	libseccomp-dev libcap-dev libarchive-dev libpcre2-dev
	libcmocka-dev jq openssl systemd clang clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "flotilla: missing packages: ${missing[*]}; run as root (or sudo) to install them" >&2
	exit 1
fi
echo "flotilla: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
