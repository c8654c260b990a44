package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentid/agentid/pkg/server/config"
)

const withPage = minimal + `user_page:
  listen: "0.0.0.0:8444"
  url: "https://agentid.example.com:8444"
  tls: {cert_file: /etc/agentid/page.crt, key_file: /etc/agentid/page.key}
  client_id: agentid
  admin_groups: [agentid-admins]
  idle_timeout: 15m
`

func TestUserPageOffByDefault(t *testing.T) {
	cfg, err := config.Parse([]byte(minimal))
	if err != nil || cfg.UserPage != nil {
		t.Fatalf("page %+v, err %v", cfg.UserPage, err)
	}
}

func TestUserPage(t *testing.T) {
	cfg, err := config.Parse([]byte(withPage))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.UserPage
	if p == nil || p.Listen != "0.0.0.0:8444" || p.Issuer != "https://idp.example.com" || p.ClientID != "agentid" ||
		p.IdleTimeout != 15*time.Minute || p.MaxAge != 0 || len(p.AdminGroups) != 1 {
		t.Fatalf("page %+v", p)
	}
}

func TestUserPageRejects(t *testing.T) {
	for _, tt := range []struct{ from, to, want string }{
		{`listen: "0.0.0.0:8444"`, `listen: ""`, "config: user_page.listen: is required"},
		{`listen: "0.0.0.0:8444"`, `listen: "8444"`, "config: user_page.listen: address 8444: missing port in address"},
		{`url: "https://agentid.example.com:8444"`, `url: "http://agentid.example.com"`, "config: user_page.url: must be an https URL without a path"},
		{`url: "https://agentid.example.com:8444"`, `url: "https://agentid.example.com/ui"`, "config: user_page.url: must be an https URL without a path"},
		{", key_file: /etc/agentid/page.key", "", "config: user_page.tls: cert_file and key_file are required (browsers call the page over HTTPS)"},
		{"client_id: agentid", "client_id: other", `config: user_page.client_id: "other" must be among the audiences of issuer "https://idp.example.com" (the page's ID tokens are verified as user tokens)`},
		{"client_id: agentid", "client_id: agentid\n  issuer: https://other.example.com", `config: user_page.issuer: "https://other.example.com" is not one of oidc.issuers`},
		{"admin_groups: [agentid-admins]", "admin_users: [alice]", "config: user_page.admin_users[0]: must be <issuer>#<subject>"},
		{"idle_timeout: 15m", "idle_timeout: -1m", "config: user_page.idle_timeout: idle_timeout and max_age must be positive"},
		{"idle_timeout: 15m", "idle_timeout: 15m\n  cookie_domain: x", "config: yaml: unmarshal errors:\n  line 21: field cookie_domain not found in type config.UserPageFile"},
	} {
		if !strings.Contains(withPage, tt.from) {
			t.Fatalf("fixture lacks %q", tt.from)
		}
		_, err := config.Parse([]byte(strings.Replace(withPage, tt.from, tt.to, 1)))
		if err == nil || err.Error() != tt.want {
			t.Errorf("err = %v\nwant  %s", err, tt.want)
		}
	}
}
