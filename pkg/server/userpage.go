package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/agentid/agentid/pkg/oidcauth"
	"github.com/agentid/agentid/pkg/server/config"
	"github.com/agentid/agentid/pkg/store"
	"github.com/agentid/agentid/pkg/userpage"
	"github.com/sirupsen/logrus"
)

// userPageListener is the user page's HTTPS listener.
type userPageListener struct {
	server   *http.Server
	listener net.Listener
}

// newUserPage builds the user page (pkg/userpage) from the user_page
// section and listens; nil when the page is off. The certificate (re-read
// when its files change, as the OAuth listener's) and the client secret are
// read here, so a missing file stops start-up.
func newUserPage(c *config.UserPage, st store.Store, users *oidcauth.Authenticator, log logrus.FieldLogger) (*userPageListener, error) {
	if c == nil {
		return nil, nil
	}
	certs := &certFiles{key: "user_page.tls", certFile: c.TLSCertFile, keyFile: c.TLSKeyFile}
	if _, err := certs.get(); err != nil {
		return nil, err
	}
	var secret string
	if c.ClientSecretFile != "" {
		b, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read the client secret: %w", err)
		}
		secret = strings.TrimRight(string(b), "\r\n")
	}
	page, err := userpage.New(userpage.Config{
		URL: c.URL, Issuer: c.Issuer, ClientID: c.ClientID, ClientSecret: secret,
		Store: st, Users: users, AdminUsers: c.AdminUsers, AdminGroups: c.AdminGroups,
		IdleTimeout: c.IdleTimeout, MaxAge: c.MaxAge, Log: log.WithField("subsystem", "user_page"),
	})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("failed to listen on %s: %w", c.Listen, err)
	}
	return &userPageListener{listener: l, server: &http.Server{
		Handler: page,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return certs.get() },
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}}, nil
}

func (p *userPageListener) serve() error {
	if err := p.server.ServeTLS(p.listener, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
