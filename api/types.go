package api

import (
	"errors"
	"fmt"
	"strings"
)

// Version is the API version; it is the first element of every path.
const Version = "v1"

// DefaultSocket is the daemon's default API socket (DESIGN.md section 4).
const DefaultSocket = "/run/flowspan/api.sock"

// MirrorSpec is a mirror definition: what `flowspan mirror add` sends, what the
// state file and the YAML config (same field names) hold.
type MirrorSpec struct {
	// Name is unique per daemon.
	Name string `json:"name" yaml:"name"`
	// Bridge is the OVS bridge the mirror lives on.
	Bridge string `json:"bridge" yaml:"bridge"`
	// Ingress ports: packets the bridge receives on them are selected.
	Ingress []string `json:"ingress,omitempty" yaml:"ingress,omitempty"`
	// Egress ports: packets the bridge sends out of them are selected.
	Egress []string `json:"egress,omitempty" yaml:"egress,omitempty"`
	// Ports are selected in both directions.
	Ports []string `json:"ports,omitempty" yaml:"ports,omitempty"`
	// VLANs narrow the selection; with no ports they mean every port in these VLANs.
	VLANs []uint16 `json:"vlans,omitempty" yaml:"vlans,omitempty"`
	// All selects every port of the bridge (except outputs).
	All bool `json:"all,omitempty" yaml:"all,omitempty"`
	// Match holds filters in ovs-ofctl match syntax; a selected packet is
	// mirrored if it matches any of them.
	Match []string `json:"match,omitempty" yaml:"match,omitempty"`
	// Snaplen truncates each copy to this many bytes (0 = whole packet).
	Snaplen uint16 `json:"snaplen,omitempty" yaml:"snaplen,omitempty"`
	// Output is where copies go.
	Output Output `json:"output" yaml:"output"`
	// Ephemeral marks a mirror that lives only as long as the client session
	// that created it (flowspan tap). Ephemeral mirrors are removed, with their
	// created ports, when the session ends or when the daemon starts again.
	// Set by the server on POST /v1/taps; rejected on POST /v1/mirrors.
	Ephemeral bool `json:"ephemeral,omitempty" yaml:"-"`
}

// Output is a mirror's destination: exactly one of Port (optionally Create),
// VLAN (RSPAN) or Tunnel.
type Output struct {
	// Port is the output port name. With Create, flowspan creates it as an
	// internal port (or, with Tunnel, as the tunnel port) and removes it with
	// the mirror. With Tunnel and no Port, flowspan picks a name.
	Port string `json:"port,omitempty" yaml:"port,omitempty"`
	// Create asks flowspan to create Port as an internal port.
	Create bool `json:"create,omitempty" yaml:"create,omitempty"`
	// VLAN is an RSPAN VLAN: copies are flooded in this VLAN.
	VLAN uint16 `json:"vlan,omitempty" yaml:"vlan,omitempty"`
	// Tunnel sends copies to a remote collector through a port flowspan creates.
	Tunnel *Tunnel `json:"tunnel,omitempty" yaml:"tunnel,omitempty"`
}

// Tunnel describes a tunnel output port (OVS Interface type and options).
type Tunnel struct {
	// Type is gre, erspan, vxlan or geneve.
	Type string `json:"type" yaml:"type"`
	// Remote is the collector's IP address (required).
	Remote string `json:"remote" yaml:"remote"`
	// Key is the GRE key, VXLAN/Geneve VNI or ERSPAN session id (0 = none).
	Key uint32 `json:"key,omitempty" yaml:"key,omitempty"`
	// ERSPANVer is the ERSPAN version, 1 or 2 (erspan only; 0 = OVS default).
	ERSPANVer uint8 `json:"erspan_ver,omitempty" yaml:"erspan_ver,omitempty"`
	// ERSPANIdx is the ERSPAN v1 index.
	ERSPANIdx uint32 `json:"erspan_idx,omitempty" yaml:"erspan_idx,omitempty"`
	// ERSPANDir is the ERSPAN v2 direction (0 ingress, 1 egress).
	ERSPANDir uint8 `json:"erspan_dir,omitempty" yaml:"erspan_dir,omitempty"`
	// ERSPANHwID is the ERSPAN v2 hardware id.
	ERSPANHwID uint8 `json:"erspan_hwid,omitempty" yaml:"erspan_hwid,omitempty"`
}

// State is a mirror's reconcile state.
type State string

const (
	// StateActive: the mirror's flows are installed on the switch.
	StateActive State = "active"
	// StatePending: the mirror is defined but cannot be (fully) installed yet,
	// typically because a port is missing or the switch is not connected.
	// Status.Detail says why ("port vnet2 missing").
	StatePending State = "pending"
	// StateError: installing the mirror failed; Status.Detail has the error.
	StateError State = "error"
)

// Status is a mirror's observed state.
type Status struct {
	State State `json:"state"`
	// Detail explains a pending or error state, e.g. "port vnet2 missing".
	Detail string `json:"detail,omitempty"`
	// MissingPorts lists ports named by the mirror that the bridge lacks.
	MissingPorts []string `json:"missing_ports,omitempty"`
}

// String renders the status the way the CLI shows it: "active",
// "pending: port vnet2 missing", "error: ...".
func (s Status) String() string {
	if s.Detail == "" {
		return string(s.State)
	}
	return string(s.State) + ": " + s.Detail
}

// Origin says where a mirror definition came from.
type Origin string

const (
	// OriginAPI: created through the API (mirror add); kept until deleted.
	OriginAPI Origin = "api"
	// OriginConfig: created from the --config file; removed when the file no
	// longer declares it.
	OriginConfig Origin = "config"
	// OriginTap: an ephemeral tap mirror.
	OriginTap Origin = "tap"
)

// Mirror is a defined mirror with its status.
type Mirror struct {
	Spec   MirrorSpec `json:"spec"`
	Origin Origin     `json:"origin"`
	Status Status     `json:"status"`
}

// Direction of a selection.
type Direction string

const (
	// DirIngress: packets received on Port.
	DirIngress Direction = "ingress"
	// DirEgress: packets the bridge sends (unicast) out of Port.
	DirEgress Direction = "egress"
	// DirFlood: flooded packets reaching the mirror's egress ports (Port "").
	DirFlood Direction = "flood"
	// DirAll: every packet of an all / VLAN-only / filter-only mirror (Port "").
	DirAll Direction = "all"
)

// SelectionStats counts the copies a mirror sent to its output because of
// one selection (source port and direction), after VLANs, filters and
// de-duplication. Each copy counts for exactly one selection, so a mirror's
// selections add up to its Packets and Bytes. Port is "" for selections
// without a single source port (flood, and all / VLAN-only / filter-only
// mirrors).
type SelectionStats struct {
	Port      string    `json:"port"`
	Direction Direction `json:"direction"`
	Packets   uint64    `json:"packets"`
	Bytes     uint64    `json:"bytes"`
}

// MirrorStats counts what a mirror copied (Packets, Bytes: copies sent to
// its output) and, per selection, which selection each copy came from.
type MirrorStats struct {
	Name       string           `json:"name"`
	Bridge     string           `json:"bridge"`
	Packets    uint64           `json:"packets"`
	Bytes      uint64           `json:"bytes"`
	Selections []SelectionStats `json:"selections"`
}

// StatsList is the body of GET /v1/stats.
type StatsList struct {
	Mirrors []MirrorStats `json:"mirrors"`
}

// MirrorList is the body of GET /v1/mirrors.
type MirrorList struct {
	Mirrors []Mirror `json:"mirrors"`
}

// FlowList is the body of GET /v1/mirrors/{name}/flows: the mirror's installed
// flows in ovs-ofctl -O OpenFlow13 syntax, one per element.
type FlowList struct {
	Flows []string `json:"flows"`
}

// ReleaseResult is the body of POST /v1/bridges/{bridge}/release.
type ReleaseResult struct {
	Bridge string `json:"bridge"`
	// Deleted lists the mirrors removed from the bridge.
	Deleted []string `json:"deleted"`
}

// VersionInfo is the body of GET /v1/version.
type VersionInfo struct {
	Version string `json:"version"`
	API     string `json:"api"`
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  Code   `json:"code"`
}

// Code classifies an error; each has one HTTP status.
type Code string

const (
	CodeInvalid     Code = "invalid"     // 400
	CodeNotFound    Code = "not_found"   // 404
	CodeExists      Code = "exists"      // 409
	CodeUnavailable Code = "unavailable" // 503
	CodeInternal    Code = "internal"    // 500
)

// Sentinel errors. Backends wrap their errors so that errors.Is finds one of
// these (use WithCode or fmt.Errorf with %w); the server maps them to codes
// and the client's *Error matches them again with errors.Is.
var (
	ErrInvalid     = errors.New("invalid")
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrUnavailable = errors.New("unavailable")
	// ErrDaemonNotRunning: the client could not reach the daemon's socket.
	ErrDaemonNotRunning = errors.New("flowspan daemon not running")
)

func (c Code) sentinel() error {
	switch c {
	case CodeInvalid:
		return ErrInvalid
	case CodeNotFound:
		return ErrNotFound
	case CodeExists:
		return ErrExists
	case CodeUnavailable:
		return ErrUnavailable
	}
	return nil
}

// HTTPStatus is the status code used for c.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeInvalid:
		return 400
	case CodeNotFound:
		return 404
	case CodeExists:
		return 409
	case CodeUnavailable:
		return 503
	}
	return 500
}

// CodeOf classifies err by the sentinel it wraps (CodeInternal if none).
func CodeOf(err error) Code {
	switch {
	case errors.Is(err, ErrInvalid):
		return CodeInvalid
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrExists):
		return CodeExists
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	}
	return CodeInternal
}

// WithCode returns err marked with code's sentinel without changing its
// message: errors.Is(WithCode(CodeInvalid, e), ErrInvalid) is true and
// WithCode(CodeInvalid, e).Error() == e.Error().
func WithCode(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

type codedError struct {
	code Code
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }
func (e *codedError) Is(target error) bool {
	s := e.code.sentinel()
	return s != nil && target == s
}

// Error is an error reported by the daemon, as the client returns it.
// errors.Is(err, ErrNotFound) etc. work on it.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code classifies the error.
	Code Code
	// Message is the daemon's error text, e.g.
	// `mirror "web": port "vnet9": not on bridge br0`.
	Message string
}

func (e *Error) Error() string { return e.Message }

// Is matches the sentinel of e.Code.
func (e *Error) Is(target error) bool {
	s := e.Code.sentinel()
	return s != nil && target == s
}

// SelectionString renders a spec's selection compactly for logs and tables,
// e.g. "ports=vnet2 ingress=vnet3 vlans=10 match=tcp,tp_dst=443".
func (s MirrorSpec) SelectionString() string {
	var parts []string
	add := func(k string, v []string) {
		if len(v) > 0 {
			parts = append(parts, k+"="+strings.Join(v, ","))
		}
	}
	add("ports", s.Ports)
	add("ingress", s.Ingress)
	add("egress", s.Egress)
	if len(s.VLANs) > 0 {
		v := make([]string, len(s.VLANs))
		for i, x := range s.VLANs {
			v[i] = fmt.Sprint(x)
		}
		add("vlans", v)
	}
	if s.All {
		parts = append(parts, "all")
	}
	for _, m := range s.Match {
		parts = append(parts, "match="+m)
	}
	return strings.Join(parts, " ")
}

// String renders the output: "mirror0", "mirror0 (created)",
// "vlan 15", "gre:192.0.2.1:7".
func (o Output) String() string {
	switch {
	case o.Tunnel != nil:
		s := o.Tunnel.Type + ":" + o.Tunnel.Remote
		if o.Tunnel.Key != 0 {
			s += fmt.Sprintf(":%d", o.Tunnel.Key)
		}
		if o.Port != "" {
			s += " (port " + o.Port + ")"
		}
		return s
	case o.VLAN != 0:
		return fmt.Sprintf("vlan %d", o.VLAN)
	case o.Create:
		return o.Port + " (created)"
	}
	return o.Port
}
