package config

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// UserPageFile is the user_page section: the page where people sign in
// and see and revoke their delegations (pkg/userpage).
type UserPageFile struct {
	// Listen is the page's HTTPS address, e.g. "0.0.0.0:8444". Required.
	Listen string `yaml:"listen"`
	// URL is the page's external base URL (https, no path) as browsers
	// reach it; the IdP redirects to URL + "/callback". Required.
	URL string `yaml:"url"`
	// TLS is the page's certificate, from files re-read when they change:
	// an ordinary web certificate, since browsers call it. Required.
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// Issuer is the OIDC issuer users sign in with: one of oidc.issuers,
	// whose audiences include ClientID (the page's ID tokens pass the same
	// checks as an API caller's user token). Default: the only issuer, when
	// there is one.
	Issuer string `yaml:"issuer"`
	// ClientID is the page's OAuth client at the IdP. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecretFile holds the client's secret (read at start, trailing
	// newline dropped). Empty: a public client; PKCE protects the code.
	ClientSecretFile string `yaml:"client_secret_file"`
	// AdminUsers ("<issuer>#<subject>") and the members of AdminGroups (the
	// issuer's groups claim) see and revoke every user's delegations.
	AdminUsers  []string `yaml:"admin_users"`
	AdminGroups []string `yaml:"admin_groups"`
	// IdleTimeout ends a session unused this long (default 30m); MaxAge
	// ends any session this long after sign-in (default 12h).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	MaxAge      time.Duration `yaml:"max_age"`
}

// UserPage is the validated user_page section.
type UserPage struct {
	Listen, URL, TLSCertFile, TLSKeyFile string
	Issuer, ClientID, ClientSecretFile   string
	AdminUsers, AdminGroups              []string
	IdleTimeout, MaxAge                  time.Duration
}

// build validates the section against the issuers; nil when absent.
func (u *UserPageFile) build(issuers []Issuer, fail func(string, string, ...any)) *UserPage {
	if u == nil {
		return nil
	}
	p := &UserPage{Listen: u.Listen, URL: u.URL, TLSCertFile: u.TLS.CertFile, TLSKeyFile: u.TLS.KeyFile, Issuer: u.Issuer,
		ClientID: u.ClientID, ClientSecretFile: u.ClientSecretFile, AdminUsers: u.AdminUsers, AdminGroups: u.AdminGroups,
		IdleTimeout: u.IdleTimeout, MaxAge: u.MaxAge}
	if u.Listen == "" {
		fail("user_page.listen", "is required")
	} else if _, _, err := net.SplitHostPort(u.Listen); err != nil {
		fail("user_page.listen", "%v", err)
	}
	if pu, err := url.Parse(u.URL); u.URL == "" || err != nil || pu.Scheme != "https" || pu.Host == "" ||
		strings.TrimSuffix(pu.Path, "/") != "" || pu.RawQuery != "" || pu.Fragment != "" {
		fail("user_page.url", "must be an https URL without a path")
	}
	if u.TLS.CertFile == "" || u.TLS.KeyFile == "" {
		fail("user_page.tls", "cert_file and key_file are required (browsers call the page over HTTPS)")
	}
	if u.ClientID == "" {
		fail("user_page.client_id", "is required")
	}
	if p.Issuer == "" && len(issuers) == 1 {
		p.Issuer = issuers[0].URL
	}
	i := slices.IndexFunc(issuers, func(is Issuer) bool { return is.URL == p.Issuer })
	switch {
	case p.Issuer == "":
		fail("user_page.issuer", "is required when oidc.issuers lists more than one")
	case i < 0:
		fail("user_page.issuer", "%q is not one of oidc.issuers", p.Issuer)
	case u.ClientID != "" && !slices.Contains(issuers[i].Audiences, u.ClientID):
		fail("user_page.client_id", "%q must be among the audiences of issuer %q (the page's ID tokens are verified as user tokens)", u.ClientID, p.Issuer)
	}
	for j, a := range u.AdminUsers {
		if k := strings.Index(a, "#"); k <= 0 || k == len(a)-1 {
			fail(fmt.Sprintf("user_page.admin_users[%d]", j), "must be <issuer>#<subject>")
		}
	}
	if u.IdleTimeout < 0 || u.MaxAge < 0 {
		fail("user_page.idle_timeout", "idle_timeout and max_age must be positive")
	}
	return p
}
