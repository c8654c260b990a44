package sidecar_test

import (
	"fmt"

	"github.com/agentid/agentid/pkg/sidecar"
)

// A configuration is decoded strictly and refuses to listen beyond the
// agent's own machine.
func ExampleParseConfig() {
	_, err := sidecar.ParseConfig([]byte("listen: 0.0.0.0:15080\n"))
	fmt.Println(err)
	_, err = sidecar.ParseConfig([]byte("listen: localhost:15080\nlisten_all: true\n"))
	fmt.Println(err)
	c, err := sidecar.ParseConfig([]byte("listen: localhost:15080\nworkload_api: unix:///run/spire/agent.sock\n"))
	fmt.Println(c.Listen, c.MaxBodyBytes, c.RequestTimeout, err)
	// Output:
	// sidecar: invalid config: listen: listen address is not a unix socket or a loopback address: "0.0.0.0:15080"
	// sidecar: invalid config: line 2: unknown key "listen_all"
	// 127.0.0.1:15080 65536 10s <nil>
}
