//go:build !linux

package ovsdb

import (
	"errors"
	"fmt"
)

// setLinkUp is only implemented on Linux; elsewhere set Config.SkipLinkUp.
func setLinkUp(netns, name string) error {
	return fmt.Errorf("link %q: %w", name, errors.New("bringing links up is only supported on linux"))
}
