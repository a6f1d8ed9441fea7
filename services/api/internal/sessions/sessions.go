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
	// Kind, Parent, Workspace and Host describe a record derived from a
	// session for one workspace host (subdomain mode): a one-time ticket or
	// that host's access. A plain session has none of them.
	Kind      Kind   `json:"kind,omitempty"`
	Parent    string `json:"parent,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	Host      string `json:"host,omitempty"`
}

// Kind says what a record of the bucket is.
type Kind string

const (
	// KindSession is a browser's session on the public host.
	KindSession Kind = ""
	// KindTicket is a one-time, short-lived pass from the public host to
	// one workspace host, redeemed for that host's access.
	KindTicket Kind = "ticket"
	// KindAccess opens one workspace on its own host for as long as the
	// session it came from lives.
	KindAccess Kind = "access"
)

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

// newID makes a cookie value for subject's records, its bucket key and the
// hash the record keeps.
func newID(subject string) (cookie, key, check string, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", "", err
	}
	cookie = userKey(subject) + "." + base64.RawURLEncoding.EncodeToString(raw)
	key, check, err = parse(cookie)
	if err != nil {
		return "", "", "", fmt.Errorf("session id: %w", err)
	}
	return cookie, key, check, nil
}

// Create starts a session for p and returns the cookie value.
func (s *Store) Create(ctx context.Context, p auth.Principal) (string, Session, error) {
	cookie, key, check, err := newID(p.Subject)
	if err != nil {
		return "", Session{}, err
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

// Lookup returns the live session a cookie names. A ticket or a workspace
// host's access is not a session: it never opens the API or the dashboard.
func (s *Store) Lookup(ctx context.Context, cookie string) (Session, error) {
	sess, _, _, err := s.lookup(ctx, cookie, KindSession)
	return sess, err
}

// lookup returns the live record of kind a cookie names, its key and its
// revision.
func (s *Store) lookup(ctx context.Context, cookie string, kind Kind) (Session, string, uint64, error) {
	key, check, err := parse(cookie)
	if err != nil {
		return Session{}, "", 0, err
	}
	sess, rev, err := s.get(ctx, key)
	if err != nil {
		return Session{}, "", 0, err
	}
	if subtle.ConstantTimeCompare([]byte(sess.Check), []byte(check)) != 1 || sess.Kind != kind {
		return Session{}, "", 0, ErrNoSession
	}
	return sess, key, rev, nil
}

// get reads the live record stored under key.
func (s *Store) get(ctx context.Context, key string) (Session, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Session{}, 0, ErrNoSession
	}
	if err != nil {
		return Session{}, 0, fmt.Errorf("read session: %w", err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value(), &sess); err != nil || !s.now().Before(sess.Expires) {
		return Session{}, 0, ErrNoSession
	}
	if !sess.storedAs(key) {
		return Session{}, 0, fmt.Errorf("%w: the record under %s is not one Berth wrote", ErrNoSession, key)
	}
	return sess, e.Revision(), nil
}

// storedAs reports whether the record fits the key it was read from, as
// every record Create, Ticket and Redeem write does: under its own
// subject's prefix, with the hash the key was cut from, a known kind and,
// for a workspace host's records, what they are bound to. Only the API
// writes the bucket; this keeps a record written any other way (a leaked
// ops credential, a restored backup of another installation) from being a
// sign-in as whoever it names.
func (sess Session) storedAs(key string) bool {
	user, hash, _ := strings.Cut(key, ".")
	if sess.Subject == "" || user != userKey(sess.Subject) || len(sess.Check) != 64 || !strings.HasPrefix(sess.Check, hash) {
		return false
	}
	switch sess.Kind {
	case KindSession:
		return sess.Parent == "" && sess.Workspace == "" && sess.Host == ""
	case KindTicket, KindAccess:
		// Its parent is a session of the same user (same prefix).
		return strings.HasPrefix(sess.Parent, user+".") && sess.Workspace != "" && sess.Host != ""
	}
	return false
}

// TicketTTL is how long a ticket to a workspace host may wait to be
// redeemed: one redirect.
const TicketTTL = time.Minute

// Ticket issues a one-time pass to workspaceID on host for the session the
// cookie names (subdomain mode: the session cookie never leaves the public
// host, so a workspace host learns who its visitor is by redeeming this).
func (s *Store) Ticket(ctx context.Context, cookie, workspaceID, host string) (string, error) {
	parent, parentKey, _, err := s.lookup(ctx, cookie, KindSession)
	if err != nil {
		return "", err
	}
	expires := s.now().UTC().Add(TicketTTL)
	if parent.Expires.Before(expires) {
		expires = parent.Expires
	}
	return s.derive(ctx, parent, parentKey, KindTicket, workspaceID, host, expires)
}

// Redeem spends a ticket for workspaceID on host (once: a second redeem
// finds nothing) and returns the host's access cookie value and the
// session it acts for.
func (s *Store) Redeem(ctx context.Context, ticket, workspaceID, host string) (string, Session, error) {
	t, key, rev, err := s.lookup(ctx, ticket, KindTicket)
	if err != nil {
		return "", Session{}, err
	}
	if t.Workspace != workspaceID || t.Host != host {
		return "", Session{}, ErrNoSession
	}
	// Deleting at the revision read makes the ticket single-use even when
	// two requests redeem it at once: one delete fails.
	if err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev)); err != nil {
		return "", Session{}, ErrNoSession
	}
	parent, _, err := s.get(ctx, t.Parent)
	if err != nil || parent.Kind != KindSession {
		return "", Session{}, ErrNoSession
	}
	cookie, err := s.derive(ctx, parent, t.Parent, KindAccess, workspaceID, host, parent.Expires)
	if err != nil {
		return "", Session{}, err
	}
	return cookie, parent, nil
}

// Access returns the session an access cookie acts for, if it was issued
// for workspaceID on host and that session is still live: ending the
// session (logout, an admin signing the user out) closes every workspace
// host it opened.
func (s *Store) Access(ctx context.Context, cookie, workspaceID, host string) (Session, error) {
	a, _, _, err := s.lookup(ctx, cookie, KindAccess)
	if err != nil {
		return Session{}, err
	}
	if a.Workspace != workspaceID || a.Host != host {
		return Session{}, ErrNoSession
	}
	parent, _, err := s.get(ctx, a.Parent)
	if err != nil || parent.Kind != KindSession {
		return Session{}, ErrNoSession
	}
	return parent, nil
}

// derive stores a record of kind for parent and returns its cookie value.
// Its key shares the user's prefix, so EndAll removes it with the
// sessions.
func (s *Store) derive(ctx context.Context, parent Session, parentKey string, kind Kind, workspaceID, host string, expires time.Time) (string, error) {
	cookie, key, check, err := newID(parent.Subject)
	if err != nil {
		return "", err
	}
	rec := parent
	rec.Kind, rec.Parent, rec.Workspace, rec.Host = kind, parentKey, workspaceID, host
	rec.Created, rec.Expires, rec.Check = s.now().UTC(), expires, check
	body, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	if _, err := s.kv.Create(ctx, key, body); err != nil {
		return "", fmt.Errorf("store %s: %w", kind, err)
	}
	return cookie, nil
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
