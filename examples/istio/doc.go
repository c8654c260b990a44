// Package istio holds the Istio example (YAML beside this file) and the test
// that keeps it honest: every claim path the YAML names is one pkg/claims
// defines, and agentid-extauthz's rules in the ConfigMap compile. See
// README.md.
package istio
