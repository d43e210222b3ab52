package ovsdb

import "errors"

// Sentinel errors; test with errors.Is. Every error returned by this package
// also names the endpoint, bridge or port it is about.
var (
	// ErrNotFound: the bridge or port does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a port of that name exists and is not the port asked for.
	ErrExists = errors.New("already exists")
	// ErrNotOwned: the port was not created by flowspan, so flowspan will
	// not remove it.
	ErrNotOwned = errors.New("not created by flowspan")
	// ErrInvalid: bad input (endpoint, name, tunnel parameters); nothing
	// was changed.
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
	// ErrPortFailed: ovs-vswitchd could not create the port's interface
	// (its ofport is -1); the error text carries Interface.error.
	ErrPortFailed = errors.New("interface failed")
)
