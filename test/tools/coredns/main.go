// Command coredns is CoreDNS with only the plugins the test cluster's DNS
// needs (test/cluster): the kubernetes plugin answering cluster.local from
// the API, and errors. CoreDNS's own main compiles in every plugin, cloud
// DNS providers included; this build keeps the tool module small.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

func init() {
	// The plugins' order in a server block, as CoreDNS's plugin.cfg would
	// generate it for these two.
	dnsserver.Directives = []string{"errors", "kubernetes"}
}

func main() { coremain.Run() }
