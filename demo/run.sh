#!/usr/bin/env bash
# make demo: build flowspan and show it mirroring traffic in a private
# Open vSwitch lab (own namespaces and run directory; never the system OVS).
# Installs what is missing first (Debian/Ubuntu, as root). Everything the
# demo creates is removed at the end, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then
		echo "demo: needs root (network namespaces, Open vSwitch); re-running with sudo" >&2
		exec sudo --preserve-env=PATH,GOPATH,GOCACHE,GOMODCACHE,GOFLAGS "$0" "$@"
	fi
	echo "demo: must run as root (network namespaces, Open vSwitch)" >&2
	exit 1
fi

# Tools the lab needs: binary -> Debian package.
declare -A pkg=(
	[ovs-vswitchd]=openvswitch-switch [ovsdb-server]=openvswitch-switch
	[ovs-vsctl]=openvswitch-switch [ovs-ofctl]=openvswitch-switch
	[tcpdump]=tcpdump [ip]=iproute2 [ethtool]=ethtool [ping]=iputils-ping
)
missing=()
for bin in "${!pkg[@]}"; do
	command -v "$bin" >/dev/null || missing+=("${pkg[$bin]}")
done
[ -f /usr/share/openvswitch/vswitch.ovsschema ] || missing+=(openvswitch-common)
if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	if ! command -v apt-get >/dev/null; then
		echo "demo: missing ${missing[*]} and no apt-get to install them" >&2
		exit 1
	fi
	echo "==> Installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null; then
	echo "demo: Go is not installed (expected at /usr/local/go/bin/go); see README.md" >&2
	exit 1
fi
# The Debian package starts the system OVS; the demo never uses it, and
# its service does not disturb the private one either.

echo "==> Building flowspan"
mkdir -p bin
go build -tags flowspanclient -o bin/flowspan ./cmd/flowspan && go build -o bin/flowspan-daemon ./cmd/flowspan
go build -o bin/flowspan-demo ./demo
exec bin/flowspan-demo --flowspan bin/flowspan "$@"
