package api

import "context"

// Backend is what the server needs from the daemon (the root package's
// Manager implements it). Errors should wrap ErrInvalid, ErrNotFound,
// ErrExists or ErrUnavailable (see WithCode) to get the right HTTP status.
type Backend interface {
	// AddMirror validates and installs spec; on error nothing changes.
	AddMirror(ctx context.Context, spec MirrorSpec, origin Origin) (Mirror, error)
	// DeleteMirror removes a mirror (and the output port it created).
	DeleteMirror(ctx context.Context, name string) error
	// Mirrors lists every mirror sorted by name.
	Mirrors(ctx context.Context) ([]Mirror, error)
	// Mirror returns one mirror.
	Mirror(ctx context.Context, name string) (Mirror, error)
	// Stats returns the counters of one mirror, or of all when name is "".
	Stats(ctx context.Context, name string) ([]MirrorStats, error)
	// Flows returns a mirror's installed flows in ovs-ofctl syntax.
	Flows(ctx context.Context, name string) ([]string, error)
	// Release deletes every mirror of bridge and hands the bridge back.
	Release(ctx context.Context, bridge string) (ReleaseResult, error)
}
