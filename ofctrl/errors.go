package ofctrl

import (
	"errors"
	"fmt"
)

// Sentinel errors callers can test with errors.Is.
var (
	// ErrClosed: the controller was closed.
	ErrClosed = errors.New("ofctrl: controller closed")
	// ErrNotConnected: no connection to the switch right now.
	ErrNotConnected = errors.New("switch not connected")
	// ErrDisconnected: the connection dropped while a request was pending.
	ErrDisconnected = errors.New("switch disconnected")
	// ErrVersion: the peer does not speak OpenFlow 1.3.
	ErrVersion = errors.New("OpenFlow version negotiation failed")
	// ErrEchoTimeout: the switch did not answer our echo requests.
	ErrEchoTimeout = errors.New("echo requests unanswered")
	// ErrDecode: a message from the switch could not be decoded.
	ErrDecode = errors.New("undecodable message from switch")
)

// SwitchError is an OFPT_ERROR a switch sent in reply to one of our
// requests. Request describes the failing request (for Apply, which flow
// mod, by index and fields).
type SwitchError struct {
	DPID         uint64
	Type         uint16
	Code         uint16
	Experimenter uint32 // Type 0xffff only
	Request      string
	Data         []byte // the start of the failing message, as the switch echoed it
}

// Error names the error type and code and the failing request.
func (e *SwitchError) Error() string {
	s := fmt.Sprintf("switch %016x: %s", e.DPID, e.Name())
	if e.Request != "" {
		s += " for " + e.Request
	}
	return s
}

// Is matches another *SwitchError with the same type, code and experimenter,
// so errors.Is(err, &ofctrl.SwitchError{Type: 5, Code: 0}) works.
func (e *SwitchError) Is(target error) bool {
	t, ok := target.(*SwitchError)
	return ok && t.Type == e.Type && t.Code == e.Code && t.Experimenter == e.Experimenter
}

// Name returns "OFPET_X/OFPxxC_Y (type T, code C)".
func (e *SwitchError) Name() string {
	if e.Type == 0xffff {
		n := fmt.Sprintf("experimenter 0x%08x code %d", e.Experimenter, e.Code)
		if e.Experimenter == onfExperimenter {
			if c, ok := onfBundleCodes[e.Code]; ok {
				n = "ONFBFC_" + c + " (" + n + ")"
			}
		}
		return n
	}
	tn, cn := fmt.Sprintf("OFPET_%d", e.Type), fmt.Sprintf("%d", e.Code)
	if int(e.Type) < len(errorTypes) {
		et := errorTypes[e.Type]
		tn = "OFPET_" + et.name
		if int(e.Code) < len(et.codes) {
			cn = et.prefix + et.codes[e.Code]
		}
	}
	return fmt.Sprintf("%s/%s (type %d, code %d)", tn, cn, e.Type, e.Code)
}

type errorType struct {
	name, prefix string
	codes        []string
}

var errorTypes = [...]errorType{
	{"HELLO_FAILED", "OFPHFC_", []string{"INCOMPATIBLE", "EPERM"}},
	{"BAD_REQUEST", "OFPBRC_", []string{"BAD_VERSION", "BAD_TYPE", "BAD_MULTIPART", "BAD_EXPERIMENTER",
		"BAD_EXP_TYPE", "EPERM", "BAD_LEN", "BUFFER_EMPTY", "BUFFER_UNKNOWN", "BAD_TABLE_ID", "IS_SLAVE",
		"BAD_PORT", "BAD_PACKET", "MULTIPART_BUFFER_OVERFLOW"}},
	{"BAD_ACTION", "OFPBAC_", []string{"BAD_TYPE", "BAD_LEN", "BAD_EXPERIMENTER", "BAD_EXP_TYPE",
		"BAD_OUT_PORT", "BAD_ARGUMENT", "EPERM", "TOO_MANY", "BAD_QUEUE", "BAD_OUT_GROUP",
		"MATCH_INCONSISTENT", "UNSUPPORTED_ORDER", "BAD_TAG", "BAD_SET_TYPE", "BAD_SET_LEN", "BAD_SET_ARGUMENT"}},
	{"BAD_INSTRUCTION", "OFPBIC_", []string{"UNKNOWN_INST", "UNSUP_INST", "BAD_TABLE_ID", "UNSUP_METADATA",
		"UNSUP_METADATA_MASK", "BAD_EXPERIMENTER", "BAD_EXP_TYPE", "BAD_LEN", "EPERM"}},
	{"BAD_MATCH", "OFPBMC_", []string{"BAD_TYPE", "BAD_LEN", "BAD_TAG", "BAD_DL_ADDR_MASK", "BAD_NW_ADDR_MASK",
		"BAD_WILDCARDS", "BAD_FIELD", "BAD_VALUE", "BAD_MASK", "BAD_PREREQ", "DUP_FIELD", "EPERM"}},
	{"FLOW_MOD_FAILED", "OFPFMFC_", []string{"UNKNOWN", "TABLE_FULL", "BAD_TABLE_ID", "OVERLAP", "EPERM",
		"BAD_TIMEOUT", "BAD_COMMAND", "BAD_FLAGS"}},
	{"GROUP_MOD_FAILED", "OFPGMFC_", nil},
	{"PORT_MOD_FAILED", "OFPPMFC_", nil},
	{"TABLE_MOD_FAILED", "OFPTMFC_", nil},
	{"QUEUE_OP_FAILED", "OFPQOFC_", nil},
	{"SWITCH_CONFIG_FAILED", "OFPSCFC_", nil},
	{"ROLE_REQUEST_FAILED", "OFPRRFC_", nil},
	{"METER_MOD_FAILED", "OFPMMFC_", nil},
	{"TABLE_FEATURES_FAILED", "OFPTFFC_", nil},
}

var onfBundleCodes = map[uint16]string{
	2300: "UNKNOWN", 2301: "EPERM", 2302: "BAD_ID", 2303: "BUNDLE_EXIST", 2304: "BUNDLE_CLOSED",
	2305: "OUT_OF_BUNDLES", 2306: "BAD_TYPE", 2307: "BAD_FLAGS", 2308: "MSG_BAD_LEN", 2309: "MSG_BAD_XID",
	2310: "MSG_UNSUP", 2311: "MSG_CONFLICT", 2312: "MSG_TOO_MANY", 2313: "MSG_FAILED", 2314: "TIMEOUT",
	2315: "BUNDLE_IN_PROGRESS",
}
