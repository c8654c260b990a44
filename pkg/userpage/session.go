package userpage

import (
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/agentid/agentid/pkg/oidcauth"
)

// Cookie names. The __Host- prefix makes the browser refuse them unless
// they are Secure, for path / and without a Domain, so no sibling host and
// no plain-http page can set or overwrite them.
const (
	sessionCookie = "__Host-agentid-session"
	loginCookie   = "__Host-agentid-login"
)

// session is a signed-in user. It lives only in this process: a restart
// signs everyone out, which is the safe direction.
type session struct {
	ident    oidcauth.Identity
	admin    bool
	csrf     string // the token every state-changing form must carry
	signedIn time.Time
	lastSeen time.Time
}

// login is a sign-in in progress, between the redirect to the IdP and the
// callback: what the callback must find again (state, nonce) and the PKCE
// verifier only this server knows.
type login struct {
	state, nonce, verifier string
	next                   string // local path to return to
	started                time.Time
}

// key is what the maps are indexed by: the SHA-256 of the cookie value, so
// the map never holds a value a browser presents.
type key [sha256.Size]byte

func keyOf(cookie string) key { return sha256.Sum256([]byte(cookie)) }

// newSecret returns 256 bits of randomness as text fit for a cookie.
func newSecret() string { return rand.Text() + rand.Text() }

// sessions holds the sessions and the sign-ins in progress, each bounded.
type sessions struct {
	idle, maxAge time.Duration
	max          int

	mu     sync.Mutex
	byKey  map[key]*session
	logins map[key]*login
}

func newSessions(idle, maxAge time.Duration, max int) *sessions {
	return &sessions{idle: idle, maxAge: maxAge, max: max, byKey: map[key]*session{}, logins: map[key]*login{}}
}

// startLogin records a sign-in in progress and returns its cookie value;
// false when MaxSessions sign-ins are already in progress.
func (s *sessions) startLogin(l *login, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.logins) >= s.max {
		for k, l := range s.logins {
			if now.Sub(l.started) > LoginTimeout {
				delete(s.logins, k)
			}
		}
		if len(s.logins) >= s.max {
			return "", false
		}
	}
	v := newSecret()
	s.logins[keyOf(v)] = l
	return v, true
}

// takeLogin removes and returns the sign-in of a cookie value: a callback
// can complete it once.
func (s *sessions) takeLogin(cookie string, now time.Time) (*login, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := keyOf(cookie)
	l, ok := s.logins[k]
	delete(s.logins, k)
	if !ok || now.Sub(l.started) > LoginTimeout {
		return nil, false
	}
	return l, true
}

// create stores a new session and returns its cookie value; false when
// MaxSessions are live.
func (s *sessions) create(sess *session) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byKey) >= s.max {
		for k, old := range s.byKey {
			if s.expired(old, sess.signedIn) {
				delete(s.byKey, k)
			}
		}
		if len(s.byKey) >= s.max {
			return "", false
		}
	}
	v := newSecret()
	s.byKey[keyOf(v)] = sess
	return v, true
}

// get returns the live session of a cookie value and marks it used; an
// expired one is removed.
func (s *sessions) get(cookie string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := keyOf(cookie)
	sess, ok := s.byKey[k]
	if !ok {
		return session{}, false
	}
	if s.expired(sess, now) {
		delete(s.byKey, k)
		return session{}, false
	}
	sess.lastSeen = now
	return *sess, true
}

func (s *sessions) expired(sess *session, now time.Time) bool {
	return now.Sub(sess.lastSeen) >= s.idle || now.Sub(sess.signedIn) >= s.maxAge
}

// end removes a session.
func (s *sessions) end(cookie string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byKey, keyOf(cookie))
}
