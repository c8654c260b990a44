package oidcauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// minRSABits refuses RSA keys too short to trust.
const minRSABits = 2048

// maxRedirects bounds same-host redirects when fetching.
const maxRedirects = 3

var errRedirect = errors.New("redirect to another host or scheme refused")

// publicKey is one usable key of an issuer's key set.
type publicKey struct {
	kid string
	alg string // the JWK's "alg", or "" when it does not say
	key crypto.PublicKey
}

// fits reports whether the key may verify a signature made with alg.
func (k publicKey) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch k.key.(type) {
	case *rsa.PublicKey:
		return alg == algRS256
	case *ecdsa.PublicKey:
		return alg == algES256
	case ed25519.PublicKey:
		return alg == algEdDSA
	}
	return false
}

// keySet is an immutable snapshot of an issuer's keys.
type keySet struct {
	byKID   map[string][]publicKey
	all     []publicKey
	fetched time.Time
}

// candidates returns the keys that may verify a token with this kid and alg.
// mismatch is true when keys with the kid exist but none fits alg.
func (s *keySet) candidates(kid, alg string) (keys []publicKey, mismatch bool) {
	pool := s.all
	if kid != "" {
		pool = s.byKID[kid]
	}
	for _, k := range pool {
		if k.fits(alg) {
			keys = append(keys, k)
		}
	}
	return keys, kid != "" && len(pool) > 0 && len(keys) == 0
}

// issuerKeys caches one issuer's key set and refreshes it: on first use, when
// a kid is unknown, and in the background when older than KeysMaxAge; never
// more often than MinRefreshInterval, and one fetch at a time.
type issuerKeys struct {
	settings *issuerSettings
	client   *http.Client
	cfg      *resolved

	current atomic.Pointer[keySet]

	mu          sync.Mutex
	jwksURL     string // configured or discovered; "" means discover
	lastAttempt time.Time
	lastErr     error
	inflight    *refresh
}

// refresh is one fetch in flight; done is closed when err is set.
type refresh struct {
	done chan struct{}
	err  error
}

func newIssuerKeys(s *issuerSettings, client *http.Client, cfg *resolved) *issuerKeys {
	return &issuerKeys{settings: s, client: client, cfg: cfg, jwksURL: s.jwksURL}
}

// startRefresh starts a fetch and returns it, returns the one in flight, or
// returns nil when the last fetch began less than MinRefreshInterval ago.
func (k *issuerKeys) startRefresh() *refresh {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight != nil {
		return k.inflight
	}
	now := k.cfg.Clock()
	if !k.lastAttempt.IsZero() && now.Sub(k.lastAttempt) < k.cfg.MinRefreshInterval {
		return nil
	}
	k.lastAttempt = now
	r := &refresh{done: make(chan struct{})}
	k.inflight = r
	jwksURL := k.jwksURL
	// The fetch is shared by every request waiting for it, so it runs on its
	// own deadline rather than on the context of the request that started it.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), k.cfg.FetchTimeout)
		defer cancel()
		set, discovered, err := k.fetch(ctx, jwksURL)
		k.mu.Lock()
		if err == nil {
			k.current.Store(set)
			k.jwksURL = discovered
		} else if k.settings.jwksURL == "" {
			k.jwksURL = "" // discover again next time: jwks_uri may have moved
		}
		k.lastErr = err
		k.inflight = nil
		k.mu.Unlock()
		r.err = err
		close(r.done)
	}()
	return r
}

// lastError returns the error of the last fetch, nil if it succeeded.
func (k *issuerKeys) lastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

// keysFor returns the keys that may verify a token with this kid and alg,
// refreshing the key set when needed.
func (k *issuerKeys) keysFor(ctx context.Context, kid, alg string) ([]publicKey, *TokenError) {
	issuer := k.settings.url
	set := k.current.Load()
	if set != nil {
		keys, mismatch := set.candidates(kid, alg)
		if mismatch {
			return nil, tokenErr(ReasonBadAlgorithm, issuer, "algorithm does not fit the key")
		}
		if len(keys) > 0 {
			if k.cfg.Clock().Sub(set.fetched) >= k.cfg.KeysMaxAge {
				k.startRefresh() // in the background; these keys serve meanwhile
			}
			return keys, nil
		}
	}

	r := k.startRefresh()
	if r == nil {
		if err := k.lastError(); err != nil {
			return nil, &TokenError{Reason: ReasonIssuerUnavailable, Issuer: issuer, Err: err}
		}
		return nil, tokenErr(ReasonUnknownKey, issuer, "no key with this kid and key set refresh rate limited")
	}
	select {
	case <-ctx.Done():
		return nil, &TokenError{Reason: ReasonIssuerUnavailable, Issuer: issuer, Err: fmt.Errorf("waiting for key set: %w", ctx.Err())}
	case <-r.done:
	}
	if r.err != nil {
		return nil, &TokenError{Reason: ReasonIssuerUnavailable, Issuer: issuer, Err: r.err}
	}
	keys, mismatch := k.current.Load().candidates(kid, alg)
	switch {
	case mismatch:
		return nil, tokenErr(ReasonBadAlgorithm, issuer, "algorithm does not fit the key")
	case len(keys) == 0:
		return nil, tokenErr(ReasonUnknownKey, issuer, "no key with this kid after key set refresh")
	}
	return keys, nil
}

// fetch discovers the jwks_uri when jwksURL is "" and fetches the key set.
func (k *issuerKeys) fetch(ctx context.Context, jwksURL string) (*keySet, string, error) {
	if jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := k.get(ctx, k.settings.discoveryURL, &doc); err != nil {
			return nil, "", fmt.Errorf("discovery: %w", err)
		}
		// OpenID Connect Discovery §4.3: the document must name the issuer it
		// was fetched for, or a compromised or confused host could vouch for
		// another issuer's keys.
		if doc.Issuer != k.settings.url {
			return nil, "", fmt.Errorf("discovery: document names issuer %q, want %q", doc.Issuer, k.settings.url)
		}
		// A jwks_uri comes from the IdP, not from the operator: plain http (to
		// a loopback host) only for an issuer that is itself on one.
		if err := checkFetchURL(doc.JWKSURI, strings.HasPrefix(k.settings.url, "http:")); err != nil {
			return nil, "", fmt.Errorf("discovery: jwks_uri: %w", err)
		}
		jwksURL = doc.JWKSURI
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := k.get(ctx, jwksURL, &raw); err != nil {
		return nil, "", fmt.Errorf("key set: %w", err)
	}
	set := parseKeySet(raw.Keys)
	if len(set.all) == 0 {
		return nil, "", fmt.Errorf("key set: %s has no usable RS256, ES256 or EdDSA signing key", jwksURL)
	}
	set.fetched = k.cfg.Clock()
	return set, jwksURL, nil
}

// get fetches a JSON document, bounded in time and size.
func (k *issuerKeys) get(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, k.cfg.MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if int64(len(body)) > k.cfg.MaxResponseSize {
		return fmt.Errorf("GET %s: response exceeds %d bytes", url, k.cfg.MaxResponseSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: response is not the expected JSON: %w", url, err)
	}
	return nil
}

// parseKeySet keeps the keys it can use and skips the others, as RFC 7517 §5
// asks: encryption keys, other algorithms, other curves, short RSA keys,
// entries it cannot parse.
func parseKeySet(raws []json.RawMessage) *keySet {
	set := &keySet{byKID: make(map[string][]publicKey)}
	for _, raw := range raws {
		if len(set.all) == MaxKeys {
			break
		}
		var meta struct {
			Use string `json:"use"`
			Alg string `json:"alg"`
		}
		if json.Unmarshal(raw, &meta) != nil {
			continue
		}
		if meta.Use != "" && meta.Use != "sig" {
			continue
		}
		switch meta.Alg {
		case "", algRS256, algES256, algEdDSA:
		default:
			continue
		}
		var jwk jose.JSONWebKey
		if json.Unmarshal(raw, &jwk) != nil || !jwk.Valid() {
			continue
		}
		pk := publicKey{kid: jwk.KeyID, alg: meta.Alg}
		// A key set that publishes private keys is broken, but only the public
		// half is ever used here.
		switch key := jwk.Public().Key.(type) {
		case *rsa.PublicKey:
			if key.N.BitLen() < minRSABits {
				continue
			}
			pk.key = key
		case *ecdsa.PublicKey:
			if key.Curve != elliptic.P256() {
				continue
			}
			pk.key = key
		case ed25519.PublicKey:
			pk.key = key
		default:
			continue
		}
		set.all = append(set.all, pk)
		set.byKID[pk.kid] = append(set.byKID[pk.kid], pk)
	}
	return set
}

// safeClient copies base and makes it refuse redirects that leave the
// original scheme and host: discovery and key set URLs are trusted for what
// they name, not for where they point.
func safeClient(base *http.Client) *http.Client {
	c := *base
	next := base.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		first := via[0].URL
		if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
			return errRedirect
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
	return &c
}
