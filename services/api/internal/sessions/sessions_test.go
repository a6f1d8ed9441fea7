package sessions

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/api/internal/auth"
)

func openStore(t *testing.T, now func() time.Time) *Store {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(natstest.Conn(t, natstest.Server(t)))
	require.NoError(t, err)
	require.NoError(t, bus.Declare(ctx, js, bus.Options{SessionTTL: time.Hour}))
	s, err := Open(ctx, js, time.Hour, now)
	require.NoError(t, err)
	return s
}

// TestWorkspaceHostAccess: a ticket opens one workspace on one host, once;
// the access it is redeemed for lives only as long as the session, and
// neither a ticket nor an access cookie is a session.
func TestWorkspaceHostAccess(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	s := openStore(t, now)
	admin := auth.Principal{Subject: "root", Roles: []string{"user", "admin"}, User: true, Admin: true}
	session, _, err := s.Create(ctx, admin)
	require.NoError(t, err)
	const ws, host = "11111111-1111-1111-1111-111111111111", "alice.berth.test:8000"

	ticket, err := s.Ticket(ctx, session, ws, host)
	require.NoError(t, err)
	_, err = s.Lookup(ctx, ticket)
	assert.ErrorIs(t, err, ErrNoSession, "a ticket is not a session")
	_, _, err = s.Redeem(ctx, ticket, ws, "bob.berth.test:8000")
	assert.ErrorIs(t, err, ErrNoSession, "a ticket for alice's host is no good on bob's")
	_, _, err = s.Redeem(ctx, ticket, "22222222-2222-2222-2222-222222222222", host)
	assert.ErrorIs(t, err, ErrNoSession, "nor for another workspace")

	access, sess, err := s.Redeem(ctx, ticket, ws, host)
	require.NoError(t, err)
	assert.Equal(t, "root", sess.Subject)
	assert.True(t, sess.Admin)
	_, _, err = s.Redeem(ctx, ticket, ws, host)
	assert.ErrorIs(t, err, ErrNoSession, "a ticket is spent once")

	got, err := s.Access(ctx, access, ws, host)
	require.NoError(t, err)
	assert.Equal(t, "root", got.Subject)
	_, err = s.Access(ctx, access, ws, "bob.berth.test:8000")
	assert.ErrorIs(t, err, ErrNoSession, "access is for its own host")
	_, err = s.Access(ctx, access, "22222222-2222-2222-2222-222222222222", host)
	assert.ErrorIs(t, err, ErrNoSession, "and its own workspace")
	_, err = s.Lookup(ctx, access)
	assert.ErrorIs(t, err, ErrNoSession, "access is not a session: it never opens the API")
	_, err = s.Ticket(ctx, access, ws, host)
	assert.ErrorIs(t, err, ErrNoSession, "access cannot issue tickets")
	_, err = s.Access(ctx, session, ws, host)
	assert.ErrorIs(t, err, ErrNoSession, "the session cookie is not access")

	require.NoError(t, s.End(ctx, session))
	_, err = s.Access(ctx, access, ws, host)
	assert.ErrorIs(t, err, ErrNoSession, "logging out closes every workspace host the session opened")
}

// TestTicketsExpireAndSignOutEverywhere: an unredeemed ticket dies after
// TicketTTL, and signing a user out everywhere ends their access too.
func TestTicketsExpireAndSignOutEverywhere(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	s := openStore(t, now)
	alice := auth.Principal{Subject: "alice", Roles: []string{"user"}, User: true}
	session, _, err := s.Create(ctx, alice)
	require.NoError(t, err)
	const ws, host = "11111111-1111-1111-1111-111111111111", "alice.berth.test:8000"

	late, err := s.Ticket(ctx, session, ws, host)
	require.NoError(t, err)
	advance(TicketTTL + time.Second)
	_, _, err = s.Redeem(ctx, late, ws, host)
	assert.ErrorIs(t, err, ErrNoSession, "an old ticket")

	ticket, err := s.Ticket(ctx, session, ws, host)
	require.NoError(t, err)
	access, _, err := s.Redeem(ctx, ticket, ws, host)
	require.NoError(t, err)
	n, err := s.EndAll(ctx, "alice")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, 2, "the session and its access")
	_, err = s.Access(ctx, access, ws, host)
	assert.ErrorIs(t, err, ErrNoSession)

	again, _, err := s.Create(ctx, alice)
	require.NoError(t, err)
	ticket, err = s.Ticket(ctx, again, ws, host)
	require.NoError(t, err)
	access, _, err = s.Redeem(ctx, ticket, ws, host)
	require.NoError(t, err)
	advance(time.Hour)
	_, err = s.Access(ctx, access, ws, host)
	assert.ErrorIs(t, err, ErrNoSession, "access ends when its session expires")
}

// TestForeignRecordIsNoSession: a record in the bucket that Berth did not
// write for its key is refused, even with the right secret's hash: one
// naming another subject than its key's prefix (an admin's session under
// alice's cookie), one of an unknown kind, and a workspace host's access
// whose parent belongs to someone else. Before, any record whose check
// matched the cookie was the sign-in it described.
func TestForeignRecordIsNoSession(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, time.Now)
	alice := auth.Principal{Subject: "alice", Roles: []string{"user"}, User: true}
	cookie, sess, err := s.Create(ctx, alice)
	require.NoError(t, err)
	key, _, err := parse(cookie)
	require.NoError(t, err)
	root, _, err := s.Create(ctx, auth.Principal{Subject: "root", Admin: true})
	require.NoError(t, err)
	rootKey, _, err := parse(root)
	require.NoError(t, err)

	got, err := s.Lookup(ctx, cookie)
	require.NoError(t, err, "the record Berth wrote is a session")
	assert.Equal(t, "alice", got.Subject)

	for name, edit := range map[string]func(*Session){
		"another subject": func(r *Session) { r.Subject, r.Admin = "root", true },
		"unknown kind":    func(r *Session) { r.Kind = "superuser" },
		"session w/ host": func(r *Session) { r.Host = "alice.berth.test" },
		"foreign parent":  func(r *Session) { r.Kind, r.Parent, r.Workspace, r.Host = KindAccess, rootKey, "w", "h" },
		"short check":     func(r *Session) { r.Check = r.Check[:32] },
	} {
		t.Run(name, func(t *testing.T) {
			rec := sess
			edit(&rec)
			body, err := json.Marshal(rec)
			require.NoError(t, err)
			_, err = s.kv.Put(ctx, key, body)
			require.NoError(t, err)
			_, err = s.Lookup(ctx, cookie)
			assert.ErrorIs(t, err, ErrNoSession)
			_, err = s.Access(ctx, cookie, "w", "h")
			assert.ErrorIs(t, err, ErrNoSession)
		})
	}
}
