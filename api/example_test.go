package api_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/flowspan/flowspan/api"
)

// ExampleClient lists mirrors the way `flowspan mirror list` does.
func ExampleClient() {
	c := api.NewClient("unix:" + api.DefaultSocket)
	defer c.Close()
	ms, err := c.Mirrors(context.Background())
	if errors.Is(err, api.ErrDaemonNotRunning) {
		log.Fatal(err) // says how to start the daemon
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range ms {
		fmt.Printf("%s\t%s\t%s -> %s\t%s\n", m.Spec.Name, m.Spec.Bridge, m.Spec.SelectionString(), m.Spec.Output, m.Status)
	}
}
