// Package sessions keeps browser sessions server-side, in a JetStream KV
// bucket: the cookie holds an opaque id, so a session ends when Berth ends
// it (logout, an admin signing a user out everywhere, expiry), not when a
// token copied out of a cookie happens to expire.
package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/services/api/internal/auth"
)

// ErrNoSession is returned for a cookie that names no live session.
var ErrNoSession = errors.New("no such session")

// Session is what a session remembers of the sign-in that made it.
type Session struct {
	Subject string    `json:"sub"`
	Roles   []string  `json:"roles"`
	Admin   bool      `json:"admin"`
	User    bool      `json:"user"`
	Auditor bool      `json:"auditor,omitempty"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Check is the hash of the secret, compared in constant time.
	Check string `json:"check"`
}

// Store is the sessions bucket.
type Store struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

// Open binds to (or, for the API, creates) the sessions bucket. Entries
// expire after ttl; Lookup checks the expiry itself too.
func Open(ctx context.Context, js jetstream.JetStream, ttl time.Duration, now func() time.Time) (*Store, error) {
	kv, err := bus.Bucket(ctx, js, events.SessionsBucket)
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, ttl: ttl, now: now}, nil
}

// userKey names a subject in keys: subjects may hold any character, keys
// may not, and all of one user's sessions share the prefix.
func userKey(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(sum[:16])
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// parse splits a cookie value "<user key>.<secret>" into the bucket key and
// the hash of the secret the record must hold.
func parse(cookie string) (key, check string, err error) {
	user, secret, ok := strings.Cut(cookie, ".")
	if !ok || len(user) != 32 || len(secret) != 43 || strings.ContainsAny(user+secret, ".*> ") {
		return "", "", ErrNoSession
	}
	if _, err := hex.DecodeString(user); err != nil {
		return "", "", ErrNoSession
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", ErrNoSession
	}
	h := hashSecret(secret)
	return user + "." + h[:32], h, nil
}

// Create starts a session for p and returns the cookie value.
func (s *Store) Create(ctx context.Context, p auth.Principal) (string, Session, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Session{}, err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	cookie := userKey(p.Subject) + "." + secret
	key, check, err := parse(cookie)
	if err != nil {
		return "", Session{}, fmt.Errorf("session id: %w", err)
	}
	now := s.now().UTC()
	sess := Session{Subject: p.Subject, Roles: p.Roles, Admin: p.Admin, User: p.User, Auditor: p.Auditor, Created: now, Expires: now.Add(s.ttl), Check: check}
	body, err := json.Marshal(sess)
	if err != nil {
		return "", Session{}, err
	}
	if _, err := s.kv.Create(ctx, key, body); err != nil {
		return "", Session{}, fmt.Errorf("store session: %w", err)
	}
	return cookie, sess, nil
}

// Lookup returns the live session a cookie names.
func (s *Store) Lookup(ctx context.Context, cookie string) (Session, error) {
	key, check, err := parse(cookie)
	if err != nil {
		return Session{}, err
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value(), &sess); err != nil {
		return Session{}, ErrNoSession
	}
	if subtle.ConstantTimeCompare([]byte(sess.Check), []byte(check)) != 1 || !s.now().Before(sess.Expires) {
		return Session{}, ErrNoSession
	}
	return sess, nil
}

// End ends the session a cookie names (no error if there is none).
func (s *Store) End(ctx context.Context, cookie string) error {
	key, _, err := parse(cookie)
	if err != nil {
		return nil
	}
	if err := s.kv.Purge(ctx, key); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// EndAll ends every session of subject and returns how many there were.
func (s *Store) EndAll(ctx context.Context, subject string) (int, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, userKey(subject)+".*")
	if err != nil {
		return 0, fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	for key := range lister.Keys() {
		if err := s.kv.Purge(ctx, key); err != nil {
			_ = lister.Stop()
			return n, fmt.Errorf("end session: %w", err)
		}
		n++
	}
	return n, nil
}

// Principal is the identity a session carries.
func (sess Session) Principal() auth.Principal {
	return auth.Principal{Subject: sess.Subject, Roles: sess.Roles, Admin: sess.Admin, User: sess.User, Auditor: sess.Auditor}
}
