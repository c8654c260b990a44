package composer_test

import (
	"context"
	"fmt"

	composer "github.com/agentid/agentid/pkg/plugin/credentialcomposer/delegation"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
)

// Validate checks a plugin_data block the way Configure will, and explains
// what it would do. SPIRE calls it for `spire-server validate`.
func ExamplePlugin_Validate() {
	plugin := composer.New(composer.Options{})
	for _, hcl := range []string{
		`agentid_socket_path = "/run/agentid/agentid.sock"`,
		`agentid_socket_path = "/run/agentid/agentid.sock"
max_staleness = "10s"`,
		`socket_path = "/run/agentid/agentid.sock"`,
	} {
		resp, err := plugin.Validate(context.Background(), &configv1.ValidateRequest{HclConfiguration: hcl})
		if err != nil {
			panic(err)
		}
		fmt.Println(resp.GetValid(), resp.GetNotes())
	}
	// Output:
	// true []
	// true [max_staleness 10s is below twice agentid-server's default heartbeat (10s): delegated tokens will fail whenever one heartbeat is late]
	// false [composer: invalid configuration: unknown keys: socket_path]
}
