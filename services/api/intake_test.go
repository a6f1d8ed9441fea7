package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/events/intake"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/services/api/internal/app"
)

// system is a registered system connected with its own credentials.
type system struct {
	t       *testing.T
	nc      *nats.Conn
	subject string
}

// send sends a command and returns the reply.
func (s system) send(header nats.Header, body string) app.IntakeReply {
	s.t.Helper()
	m := nats.NewMsg(s.subject)
	m.Header, m.Data = header, []byte(body)
	res, err := s.nc.RequestMsg(m, 10*time.Second)
	require.NoError(s.t, err)
	var r app.IntakeReply
	require.NoError(s.t, json.Unmarshal(res.Data, &r), "%s", res.Data)
	return r
}

func structured(id, typ, data string) (nats.Header, string) {
	return nats.Header{"Content-Type": {"application/cloudevents+json"}},
		fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"moodle/course-101","type":%q,"data":%s}`, id, typ, data)
}

func binary(id, typ, data string) (nats.Header, string) {
	return nats.Header{"ce-specversion": {"1.0"}, "CE-ID": {id}, "ce-source": {"moodle%2Fcourse-101"}, "ce-type": {typ},
		"content-type": {"application/json"}}, data
}

// provisionerSaysOn appends observations as the provisioner's identity on
// the API's embedded bus (its password is where the API wrote it).
func provisionerSaysOn(t *testing.T, url, dataDir, id string, ps ...events.Payload) {
	nc, err := natsbus.Connect(url, "test-provisioner", natsbus.Identity{User: "provisioner", PasswordFile: natsbus.PasswordFile(dataDir, "provisioner")}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer nc.Close()
	l, err := eventlog.Open(context.Background(), nc, eventlog.Options{ReadOnly: true})
	require.NoError(t, err)
	for _, p := range ps {
		evs, version, err := l.ReadAll(context.Background(), id)
		require.NoError(t, err)
		require.NotEmpty(t, evs)
		ev, err := events.New(id, p, events.Meta{Source: "test", Actor: "service:provisioner"}, time.Now())
		require.NoError(t, err)
		_, err = l.Append(context.Background(), ev, version)
		require.NoError(t, err)
	}
}

// startAPIWithBus starts the API with its own embedded, authenticating
// bus (as in production) and returns the bus's address.
func (e *env) startAPIWithBus() (*api, string) {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(e.t, err)
	natsAddr := ln.Addr().String()
	require.NoError(e.t, ln.Close())
	return e.startAPI("--nats-url", "", "--nats-listen", natsAddr), natsAddr
}

// TestIntakeFromARegisteredSystem is the intake's acceptance on the API's
// own (embedded, authenticating) bus: an admin registers a system and gets
// its credentials; the system creates, starts, updates, stops and deletes a
// workspace in both modes of the NATS binding and gets replies; the events
// name it as actor and the command as cause; a duplicate is applied once;
// every kind of garbage is refused with its code and dead-lettered, and the
// next good command still works; it may publish nowhere else; revoked, it
// is let in no more.
func TestIntakeFromARegisteredSystem(t *testing.T) {
	e := newEnv(t)
	a, natsAddr := e.startAPIWithBus()
	admin := e.token("root", "admin")
	a.addImage(admin, demoImage)

	r := a.do("POST", "/api/v1/systems", admin, map[string]any{"name": "lms",
		"types": []string{intake.TypeCreate, intake.TypeStart, intake.TypeStop, intake.TypeUpdate, intake.TypeDelete}, "owners": []string{"alice", "bob"}})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	reg := r.json(t)
	assert.Equal(t, "system-lms", reg["nats_user"])
	assert.Equal(t, events.IntakeSystemSubject("lms"), reg["subject"])
	assert.Equal(t, "_INBOX_system-lms", reg["inbox_prefix"])
	var nc *nats.Conn
	var err error
	require.Eventually(t, func() bool { // the bus takes the new user within a second
		nc, err = nats.Connect("nats://"+natsAddr, nats.UserInfo("system-lms", reg["password"].(string)), nats.CustomInboxPrefix("_INBOX_system-lms"), nats.Timeout(time.Second))
		return err == nil
	}, 5*time.Second, 100*time.Millisecond, "connect as the system: %v", err)
	defer nc.Close()
	lms := system{t: t, nc: nc, subject: reg["subject"].(string)}

	// A second system reads Berth's events as they are appended; the first
	// may not.
	w := a.do("POST", "/api/v1/systems", admin, map[string]any{"name": "watcher", "types": []string{intake.TypeStart}, "owners": []string{"*"}, "read_events": true})
	require.Equal(t, http.StatusCreated, w.Status, "%s", w.Body)
	var watcher *nats.Conn
	require.Eventually(t, func() bool {
		watcher, err = nats.Connect("nats://"+natsAddr, nats.UserInfo("system-watcher", w.json(t)["password"].(string)), nats.CustomInboxPrefix("_INBOX_system-watcher"), nats.Timeout(time.Second))
		return err == nil
	}, 5*time.Second, 100*time.Millisecond)
	defer watcher.Close()
	feed, err := watcher.SubscribeSync(events.WorkspaceEvents)
	require.NoError(t, err)
	peek, err := nc.SubscribeSync(events.WorkspaceEvents)
	require.NoError(t, err)

	h, body := structured("cmd-1", intake.TypeCreate, `{"name":"alice--lab","owner":"alice","description":"course 101"}`)
	created := lms.send(h, body)
	require.True(t, created.Accepted, "%+v", created)
	id := created.WorkspaceID
	m, err := feed.NextMsg(5 * time.Second)
	require.NoError(t, err, "the watcher sees the created event")
	assert.Equal(t, events.WorkspaceSubject(id, events.TypeCreated), m.Subject)
	_, err = peek.NextMsg(500 * time.Millisecond)
	assert.Error(t, err, "a system without read_events reads nothing")
	h, body = binary("cmd-2", intake.TypeStart, `{"workspace":"alice--lab"}`)
	started := lms.send(h, body)
	require.True(t, started.Accepted, "%+v", started)
	again := lms.send(h, body) // the same command again: answered, not applied
	assert.True(t, again.Duplicate)
	assert.Equal(t, started.Version, again.Version)

	hist := a.history(admin, wsPath(id, "/events"))
	require.Len(t, hist.Events, 2, "created and one start_requested: the duplicate was not applied")
	for _, ev := range hist.Events {
		assert.Equal(t, "system:lms", ev.Actor)
		assert.True(t, strings.HasPrefix(ev.CausationID, "intake:lms:moodle/course-101#cmd-"), ev.CausationID)
	}

	garbage := []struct {
		name, body, code string
		header           nats.Header
	}{
		{"not JSON", "hello", intake.CodeNotJSON, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"wrong specversion", `{"specversion":"0.3","id":"g2","source":"s","type":"berth.intake.workspace.stop","data":{"workspace":"alice--lab"}}`, intake.CodeSpecVersion, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"unknown type", `{"specversion":"1.0","id":"g3","source":"s","type":"berth.intake.workspace.explode","data":{}}`, intake.CodeUnknownType, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"schema violation", `{"specversion":"1.0","id":"g4","source":"s","type":"berth.intake.workspace.stop","data":{"workspace":"alice--lab","force":true}}`, intake.CodeSchema, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"unauthorised owner", `{"specversion":"1.0","id":"g5","source":"s","type":"berth.intake.workspace.create","data":{"name":"carol-lab","owner":"carol"}}`, app.CodeOwnerNotAllowed, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"large payload", `{"specversion":"1.0","id":"g6","source":"s","type":"berth.intake.workspace.stop","data":{"workspace":"` + strings.Repeat("x", 900<<10) + `"}}`, intake.CodeTooLarge, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"another user's name", `{"specversion":"1.0","id":"g8","source":"s","type":"berth.intake.workspace.create","data":{"name":"bob","owner":"alice"}}`, app.CodeNameOutsideNamespace, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"no such workspace", `{"specversion":"1.0","id":"g7","source":"s","type":"berth.intake.workspace.stop","data":{"workspace":"nope"}}`, app.CodeNotFound, nats.Header{"Content-Type": {"application/cloudevents+json"}}},
	}
	for _, g := range garbage {
		got := lms.send(g.header, g.body)
		assert.False(t, got.Accepted, g.name)
		assert.Equal(t, g.code, got.Code, "%s: %s", g.name, got.Message)
	}
	dead := a.do("GET", "/api/v1/deadletters?limit=100", admin, nil).json(t)["entries"].([]any)
	assert.Len(t, dead, len(garbage), "every refused command is dead-lettered with its reason")
	assert.Contains(t, dead[0].(map[string]any)["reason"], intake.CodeNotJSON)

	h, body = structured("cmd-3", intake.TypeStop, `{"workspace":"`+id+`"}`)
	require.True(t, lms.send(h, body).Accepted, "the intake goes on after garbage")
	provisionerSaysOn(t, "nats://"+natsAddr, e.dataDir, id, &events.Running{ContainerID: "c", IP: "10.0.0.2", Port: 8080}, &events.Stopped{})
	a.waitStatus(admin, id, "stopped")
	h, body = binary("cmd-4", intake.TypeUpdate, `{"workspace":"alice--lab","description":"course 101, term 2"}`)
	require.True(t, lms.send(h, body).Accepted)
	h, body = binary("cmd-5", intake.TypeDelete, `{"workspace":"alice--lab","data":"keep"}`)
	require.True(t, lms.send(h, body).Accepted)

	// Nowhere else: not the log, not another system's subject.
	sub, err := nc.SubscribeSync(nats.NewInbox())
	require.NoError(t, err)
	defer sub.Unsubscribe()
	for _, subject := range []string{events.WorkspaceSubject(id, events.TypeStartRequested), events.IntakeSystemSubject("other"), events.CatalogSubject} {
		_, err := nc.Request(subject, []byte(`{}`), time.Second)
		assert.Error(t, err, "%s: published", subject)
	}
	final := a.history(admin, wsPath(id, "/events")).Events
	require.Len(t, final, 7, "created, start, stop, running, stopped, updated, delete_requested")
	assert.Equal(t, string(events.TypeDeleteRequested), final[6].Type)
	assert.Equal(t, "system:lms", final[6].Actor)

	require.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/systems/lms", admin, nil).Status)
	require.Eventually(t, func() bool { return !nc.IsConnected() }, 5*time.Second, 50*time.Millisecond, "a revoked system is disconnected")
	_, err = nats.Connect("nats://"+natsAddr, nats.UserInfo("system-lms", reg["password"].(string)), nats.CustomInboxPrefix("_INBOX_system-lms"), nats.Timeout(time.Second))
	assert.Error(t, err, "a revoked system is let in no more")
}

// TestSystemRegistrationRefusesBadInput: every bad registration is refused
// with its field codes; users may not register, list or revoke systems;
// revoking an unknown system is a 404.
func TestSystemRegistrationRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	for _, c := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"name": "Bad Name", "types": []string{intake.TypeStart}, "owners": []string{"*"}}, "invalid_name"},
		{map[string]any{"name": "lms", "types": []string{}, "owners": []string{"*"}}, "required"},
		{map[string]any{"name": "lms", "types": []string{"berth.intake.workspace.explode"}, "owners": []string{"*"}}, "unknown_type"},
		{map[string]any{"name": "lms", "types": []string{intake.TypeStart}, "owners": []string{}}, "required"},
		{map[string]any{"name": "lms", "types": []string{intake.TypeStart}, "owners": []string{""}}, "invalid_subject"},
	} {
		r := a.do("POST", "/api/v1/systems", admin, c.body)
		expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
		assert.Contains(t, r.fieldCodes(t), c.code, "%v", c.body)
	}
	expectProblem(t, a.do("POST", "/api/v1/systems", admin, `["not an object"]`), http.StatusBadRequest, "malformed_json")
	expectProblem(t, a.do("POST", "/api/v1/systems", alice, map[string]any{"name": "mine", "types": []string{intake.TypeStart}, "owners": []string{"alice"}}), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("GET", "/api/v1/systems", alice, nil), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("DELETE", "/api/v1/systems/nobody", admin, nil), http.StatusNotFound, "system_not_found")
	assert.Empty(t, a.do("GET", "/api/v1/systems", admin, nil).json(t)["systems"], "nothing was registered")
}

// TestIntakeRepliesOnlyToTheSender: a registered system that names a reply
// subject outside its own inbox prefix (a KV bucket's subject, another
// system's inbox) gets nothing applied and nothing published there: the
// API would publish with its own rights, so the weak system could replace
// the strong one's credential by the reply text, block a user's name or
// change the installation id. The command is dead-lettered with
// reply_refused.
func TestIntakeRepliesOnlyToTheSender(t *testing.T) {
	e := newEnv(t)
	a, natsAddr := e.startAPIWithBus()
	admin := e.token("root", "admin")
	a.addImage(admin, demoImage)
	weakSys := registerSystem(t, a, admin, natsAddr, "weak", []string{intake.TypeStart}, []string{"alice"})
	registerSystem(t, a, admin, natsAddr, "strong", []string{intake.TypeCreate, intake.TypeStart}, []string{"*"})
	weak := weakSys.nc

	ops, err := natsbus.Connect("nats://"+natsAddr, "test-ops", natsbus.Identity{User: "ops", PasswordFile: natsbus.PasswordFile(e.dataDir, "ops")}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer ops.Close()
	js, err := jetstream.New(ops)
	require.NoError(t, err)
	ctx := context.Background()
	value := func(bucket, key string) string {
		kv, err := js.KeyValue(ctx, bucket)
		require.NoError(t, err)
		en, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return "<none>"
		}
		require.NoError(t, err)
		return fmt.Sprintf("%d:%s", en.Revision(), en.Value())
	}
	targets := []struct{ bucket, key, reply string }{
		{events.SystemsBucket, "strong", "$KV." + events.SystemsBucket + ".strong"},
		{events.NameClaimsBucket, "alice", "$KV." + events.NameClaimsBucket + ".alice"},
		{events.InstallationBucket, "id", "$KV." + events.InstallationBucket + ".id"},
	}
	before := map[string]string{}
	for _, tg := range targets {
		before[tg.reply] = value(tg.bucket, tg.key)
	}
	// The strong system's inbox, which the weak system cannot read: nothing
	// must arrive there either.
	spy, err := ops.SubscribeSync("_INBOX_system-strong.>")
	require.NoError(t, err)

	header, body := structured("evt-1", intake.TypeStart, `{"owner":"alice"}`)
	replies := []string{"_INBOX_system-strong.x", "_INBOX_system-weak", "_INBOX_system-weakling.x"}
	for _, tg := range targets {
		replies = append(replies, tg.reply)
	}
	for _, reply := range replies {
		m := nats.NewMsg(events.IntakeSystemSubject("weak"))
		m.Header, m.Data, m.Reply = header, []byte(body), reply
		require.NoError(t, weak.PublishMsg(m))
		m2 := nats.NewMsg(events.IntakeSystemSubject("weak"))
		m2.Header, m2.Data, m2.Reply = nats.Header{}, []byte("not a cloudevent"), reply
		require.NoError(t, weak.PublishMsg(m2))
	}
	require.NoError(t, weak.Flush())
	require.Eventually(t, func() bool {
		dead := a.do("GET", "/api/v1/deadletters?limit=100", admin, nil).json(t)["entries"].([]any)
		n := 0
		for _, d := range dead {
			if strings.Contains(fmt.Sprint(d), "reply_refused") {
				n++
			}
		}
		return n == 2*len(replies)
	}, 10*time.Second, 100*time.Millisecond, "every command with a foreign reply subject dead-lettered as reply_refused")
	for _, tg := range targets {
		assert.Equal(t, before[tg.reply], value(tg.bucket, tg.key), "%s unchanged", tg.reply)
	}
	_, err = spy.NextMsg(200 * time.Millisecond)
	assert.ErrorIs(t, err, nats.ErrTimeout, "nothing published to another system's inbox")
	assert.Empty(t, a.do("GET", "/api/v1/workspaces?owner=alice", admin, nil).json(t)["workspaces"], "nothing applied")

	// The sender's own inbox still gets its answer.
	header, body = structured("evt-2", intake.TypeStart, `{"owner":"alice"}`)
	got := weakSys.send(header, body)
	assert.NotEqual(t, "reply_refused", got.Code, "%+v", got)
}
