package ovsdb

import (
	"strings"
	"testing"
)

// FuzzTargets: endpoint and controller-target parsing never panics, and
// every service target accepted yields a dial address the client itself
// accepts as an endpoint.
func FuzzTargets(f *testing.F) {
	for _, s := range []string{"unix:/run/db.sock", "tcp:127.0.0.1:6640", "ssl:[::1]:6640", "punix:/run/br0.x",
		"ptcp:6653", "ptcp:6653:10.0.0.1", "pssl:6653:[fd00::1]", "tcp:host:", "unix:", ":", "ptcp:+1", "ptcp:1:[]"} {
		f.Add(s)
	}
	c := &Client{endpoint: "unix:/run/openvswitch/db.sock", rundir: "/run/openvswitch"}
	f.Fuzz(func(t *testing.T, s string) {
		if scheme, _, err := parseEndpoint(s); err == nil && scheme != "unix" && scheme != "tcp" && scheme != "ssl" {
			t.Fatalf("parseEndpoint(%q) accepted scheme %q", s, scheme)
		}
		_ = checkControllerTarget(s)
		target, dial, err := c.serviceTarget("br0", ServiceMode{Target: s})
		if err != nil {
			return
		}
		if s != "" && target != s {
			t.Fatalf("serviceTarget(%q) changed the target to %q", s, target)
		}
		if _, _, err := parseEndpoint(dial); err != nil {
			t.Fatalf("serviceTarget(%q) dial address %q is not a valid endpoint: %v", s, dial, err)
		}
		if s != "" && !strings.HasPrefix(s, "p") {
			t.Fatalf("serviceTarget accepted active target %q", s)
		}
	})
}
