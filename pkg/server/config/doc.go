// Package config reads agentid-server's configuration file.
//
// The file is YAML, decoded strictly: an unknown key is an error that names
// the key and its line, so a typo never silently turns a security setting
// off. Decoding is followed by cross-field validation and defaults, and
// produces the runtime Config the server is built from:
//
//	cfg, err := config.Load("/etc/agentid/server.yaml")
//
// The server refuses to start without a trust domain, a store path, at least
// one OIDC issuer and at least one policy rule: a delegation authority with no
// way to authenticate users or no policy would either deny everything or,
// worse, be configured later in a hurry. See examples/server/agentid-server.yaml
// for a complete file.
package config
