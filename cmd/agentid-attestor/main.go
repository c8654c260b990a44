// Command agentid-attestor is the agentid WorkloadAttestor plugin for
// spire-agent. SPIRE starts it (plugin_cmd) and talks to it over go-plugin's
// gRPC; it is not meant to be run by hand. See
// pkg/plugin/workloadattestor/aiagent/README.md for the configuration.
package main

import (
	"github.com/agentid/agentid/pkg/plugin/workloadattestor/aiagent"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

func main() {
	plugin := aiagent.New()
	pluginmain.Serve(
		workloadattestorv1.WorkloadAttestorPluginServer(plugin),
		configv1.ConfigServiceServer(plugin),
	)
}
