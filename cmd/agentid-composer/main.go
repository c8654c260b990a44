// Command agentid-composer is the agentid CredentialComposer plugin for
// spire-server. SPIRE starts it (plugin_cmd) and talks to it over go-plugin's
// gRPC; it is not meant to be run by hand. See
// pkg/plugin/credentialcomposer/delegation/README.md for the configuration.
package main

import (
	composer "github.com/agentid/agentid/pkg/plugin/credentialcomposer/delegation"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	credentialcomposerv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/server/credentialcomposer/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

func main() {
	plugin := composer.New(composer.Options{})
	pluginmain.Serve(
		credentialcomposerv1.CredentialComposerPluginServer(plugin),
		configv1.ConfigServiceServer(plugin),
	)
}
