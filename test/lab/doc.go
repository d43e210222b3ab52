// Package lab gives a test its own real Open vSwitch and real hosts.
//
// Every Lab is private: ovsdb-server and ovs-vswitchd run as child processes
// of the test with OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and OVS_SYSCONFDIR pointed
// at a fresh temporary directory, and ovs-vswitchd runs inside a network
// namespace of its own (two userspace-datapath vswitchds in one namespace
// collide on the "ovs-netdev" device). Bridges use datapath_type=netdev.
//
//	test process (root network namespace)
//	  │  unix sockets in <dir>: db.sock, <bridge>.mgmt, ovs-vswitchd.ctl
//	  ▼
//	┌──────────── netns fsl-XXXX ─────────────┐     ┌─ netns fsh-XXXX-h1 ─┐
//	│ ovs-vswitchd   br0 ── h1 (veth) ────────┼─────┼── eth0  10.0.0.1    │
//	│                 │  ── mirror0 (tap)     │     └─────────────────────┘
//	│                 └── h2 (veth) ──────────┼───── ... one netns a host
//	└─────────────────────────────────────────┘
//
// Hosts are network namespaces joined to a bridge by a veth pair: the
// bridge-side end is the OVS port (named after the host unless
// HostConfig.Port says otherwise), the host-side end is eth0. Hosts get the
// MAC and addresses the test chooses; TX checksum offload is turned off so
// TCP works through the userspace datapath. Hosts without IPv6 addresses
// have IPv6 disabled, so they send nothing the test did not ask for.
// IPv6 is disabled in the vswitchd namespace too, so internal ports stay
// silent.
//
// Capture records what the bridge sends out of a port (what a device behind
// the port receives), or what it receives on it, with tcpdump, and decodes
// the packets (MACs, VLAN tags, EtherType, IP addresses, L4 ports, length).
//
// Everything is removed in t.Cleanup, also when the test fails: processes
// are stopped, namespaces deleted (which deletes their veths) and the
// directory removed. When the test has failed, the cleanup first logs the
// vswitchd log tail, the flow tables of every bridge and `ovs-vsctl show`.
//
// Without root or without Open vSwitch, New skips the test, except under
// CI=true where it fails it: CI must never silently skip these tests.
//
// A Lab and its Hosts may be used from several goroutines; each Lab is
// independent of every other, so tests using labs may run in parallel.
package lab
