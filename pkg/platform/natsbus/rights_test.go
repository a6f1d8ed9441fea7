package natsbus_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	platformbus "github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// testBus is an embedded server with Berth's identities.
type testBus struct {
	t         *testing.T
	dir, url  string
	passwords map[string]string
}

// bus starts a testBus and returns its connect function per identity.
func bus(t *testing.T) func(user string) *nats.Conn { return newBus(t).connect }

// newBus starts an embedded bus with Berth's identities; the API may answer
// the registered systems named in answered.
func newBus(t *testing.T, answered ...string) *testBus {
	t.Helper()
	dir := t.TempDir()
	passwords, err := natsbus.EnsurePasswords(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Users: natsbus.Users(passwords, answered...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return &testBus{t: t, dir: dir, url: srv.ClientURL(), passwords: passwords}
}

func (b *testBus) connect(user string) *nats.Conn {
	b.t.Helper()
	nc, err := natsbus.Connect(b.url, user, natsbus.Identity{User: user, PasswordFile: natsbus.PasswordFile(b.dir, user)}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(nc.Close)
	return nc
}

// publishRaw publishes e's body on subject as a leaked credential would,
// and reports whether the log stored it.
func publishRaw(ctx context.Context, js jetstream.JetStream, subject string, e events.Envelope) bool {
	body, _ := json.Marshal(e)
	ctx, cancel := context.WithTimeout(ctx, time.Second) // a refused publish is never acknowledged
	defer cancel()
	_, err := js.Publish(ctx, subject, body, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(events.Stream))
	return err == nil
}

// TestRightsByEventType: each service identity may append exactly its own
// event types (natsbus.Appends): the provisioner cannot append a request or
// a definition, the reaper cannot record an observation, the API cannot
// claim a container is running. Before the type was part of the subject,
// any identity that could append could append every type.
func TestRightsByEventType(t *testing.T) {
	connect := bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := eventlog.Open(ctx, connect("api"), eventlog.Options{}); err != nil {
		t.Fatal(err)
	}
	type try struct {
		user string
		t    events.Type
	}
	var (
		mu     sync.Mutex
		stored = map[try]bool{}
		wg     sync.WaitGroup
	)
	for _, user := range []string{"api", "provisioner", "reaper", "router-sync", "intake"} {
		js, _ := jetstream.New(connect(user))
		for _, typ := range events.WorkspaceTypes() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := uuid.NewString()
				e := events.Envelope{SpecVersion: events.SpecVersion, ID: uuid.NewString(), Source: "test", Type: typ,
					Subject: id, Time: time.Now(), Actor: "user:mallory", SchemaVersion: 1, Data: json.RawMessage(`{}`)}
				ok := publishRaw(ctx, js, events.WorkspaceSubject(id, typ), e)
				legacy := publishRaw(ctx, js, events.LegacyWorkspaceSubject(id), e)
				mu.Lock()
				defer mu.Unlock()
				stored[try{user, typ}] = ok
				if legacy {
					t.Errorf("%s appended %s on the old kind-less subject", user, typ)
				}
			}()
		}
	}
	wg.Wait()
	for k, ok := range stored {
		if want := slices.Contains(natsbus.Appends[k.user], k.t); ok != want {
			t.Errorf("%s appending %s: stored=%v, want %v", k.user, events.TypeToken(k.t), ok, want)
		}
	}
}

// TestNoStreamsForServices: the provisioner and the reaper bind to the
// buckets the API declared and may not create, change or delete any
// stream. With that right a broken or hostile service could delete the
// name claims or the installation id (a new id disowns every running
// workspace) or fill the server with streams of its own.
func TestNoStreamsForServices(t *testing.T) {
	connect := bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	apiJS, _ := jetstream.New(connect("api"))
	if _, err := apiJS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "berth_claims_test"}); err != nil {
		t.Fatal(err)
	}
	// Every declared bucket, among them the API's own: a session record is
	// a sign-in, a name claim a name, the installation id decides which
	// containers are Berth's.
	if err := platformbus.Declare(ctx, apiJS, platformbus.Options{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	refused := func(user, what string, try func(ctx context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			short, stop := context.WithTimeout(ctx, 2*time.Second) // a refused request is never answered
			defer stop()
			if err := try(short); err == nil {
				t.Errorf("%s may %s", user, what)
			}
		}()
	}
	for _, user := range []string{"provisioner", "reaper"} {
		js, _ := jetstream.New(connect(user))
		if _, err := platformbus.Bucket(ctx, js, "berth_claims_test"); err != nil {
			t.Errorf("%s cannot bind a declared bucket: %v", user, err)
		}
		refused(user, "create a bucket", func(ctx context.Context) error {
			_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "berth_own_" + user})
			return err
		})
		refused(user, "ask for a dead letter's retry", func(ctx context.Context) error {
			_, err := js.Publish(ctx, events.RedriveSubjectPrefix+"provisioner", []byte(`{}`))
			return err
		})
		refused(user, "redeclare the buckets", func(ctx context.Context) error {
			return platformbus.Declare(ctx, js, platformbus.Options{Replicas: 1, SessionTTL: time.Minute})
		})
		refused(user, "delete a bucket", func(ctx context.Context) error { return js.DeleteKeyValue(ctx, "berth_claims_test") })
		refused(user, "create a stream", func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OWN_" + user, Subjects: []string{"own." + user}})
			return err
		})
		// A restore creates a stream too (from a snapshot it uploads).
		refused(user, "restore a stream", func(ctx context.Context) error {
			_, err := connect(user).RequestWithContext(ctx, "$JS.API.STREAM.RESTORE.OWN_"+user, []byte(`{"config":{"name":"OWN_`+user+`","subjects":["own.`+user+`"]}}`))
			return err
		})
		for _, b := range []string{events.SessionsBucket, events.NameClaimsBucket, events.InstallationBucket} {
			kv, err := js.KeyValue(ctx, b)
			if err != nil {
				t.Fatalf("%s cannot read %s: %v", user, b, err)
			}
			refused(user, "write the API's bucket "+b, func(ctx context.Context) error {
				_, err := kv.Put(ctx, "forged", []byte(`{"admin":true}`))
				return err
			})
		}
	}
	wg.Wait()
	if _, err := apiJS.KeyValue(ctx, "berth_claims_test"); err != nil {
		t.Errorf("the bucket is gone: %v", err)
	}
}

// TestIntakeIdentity: other systems publish on berth.intake.> and nothing
// else; they cannot watch Berth's events go by either.
func TestIntakeIdentity(t *testing.T) {
	connect := bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := eventlog.Open(ctx, connect("api"), eventlog.Options{})
	require.NoError(t, err)
	api := connect("api")
	got, err := api.SubscribeSync(events.IntakeActivitySubject)
	require.NoError(t, err)
	require.NoError(t, api.Flush())

	intake := connect("intake")
	require.NoError(t, intake.Publish(events.IntakeActivitySubject, []byte(`{"workspace_id":"x"}`)))
	_, err = got.NextMsg(5 * time.Second)
	require.NoError(t, err, "the intake identity could not publish on its subject")

	// Not a registered system's subject: the subject proves the sender.
	sys, err := api.SubscribeSync(events.IntakeSystemSubject("lms"))
	require.NoError(t, err)
	require.NoError(t, api.Flush())
	require.NoError(t, intake.Publish(events.IntakeSystemSubject("lms"), []byte(`{}`)))
	_, err = sys.NextMsg(time.Second)
	assert.Error(t, err, "the intake identity posed as a registered system")
	// Nor another's replies.
	replies, err := intake.SubscribeSync("_INBOX.>")
	require.NoError(t, err) // refused asynchronously
	require.NoError(t, api.Publish("_INBOX.someone.1", []byte("a reply")))
	_, err = replies.NextMsg(time.Second)
	assert.Error(t, err, "the intake identity read someone else's reply")

	watch, err := intake.SubscribeSync(events.WorkspaceSubjectPrefix + ">")
	require.NoError(t, err) // refused asynchronously by the server
	id := uuid.NewString()
	e, _ := events.New(id, &events.Created{Name: "w", Owner: "alice", Projects: []string{}}, events.Meta{Source: "t", Actor: "user:alice"}, time.Now())
	_, err = l.Append(ctx, e, 0)
	require.NoError(t, err)
	_, err = watch.NextMsg(time.Second)
	assert.Error(t, err, "the intake identity saw an event of the log")
	js, _ := jetstream.New(intake)
	short, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	_, err = js.Stream(short, events.Stream)
	assert.Error(t, err, "the intake identity used the JetStream API")
}

// TestNoPullingAnotherServicesWork: router-sync and the reaper may follow
// the log with their own consumers, but may not pull from the provisioner's
// durables (its work and the admins' retries): pulling without acking would
// use up the work's deliveries, pulling and acking would swallow it.
func TestNoPullingAnotherServicesWork(t *testing.T) {
	connect := bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api, err := eventlog.Open(ctx, connect("api"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ajs := api.JetStream()
	for _, d := range []struct{ stream, durable string }{
		{events.Stream, "provisioner"}, {events.DeadLetterStream, "provisioner" + events.RedriveDurableSuffix},
	} {
		if _, err := ajs.CreateOrUpdateConsumer(ctx, d.stream, jetstream.ConsumerConfig{Durable: d.durable, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := events.New(uuid.NewString(), &events.Created{Name: "w", Owner: "alice", Projects: []string{}}, events.Meta{Source: "test", Actor: "user:alice"}, time.Now())
	if _, err := api.Append(ctx, e, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Publish(ctx, events.RedriveSubjectPrefix+"provisioner", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"router-sync", "reaper"} {
		nc := connect(user)
		for _, d := range []string{events.Stream + ".provisioner", events.DeadLetterStream + ".provisioner" + events.RedriveDurableSuffix} {
			inbox := nats.NewInbox()
			sub, err := nc.SubscribeSync(inbox)
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+d, inbox, []byte(`{"batch":1,"expires":1000000000}`)); err != nil {
				t.Fatal(err)
			}
			if m, err := sub.NextMsg(1500 * time.Millisecond); err == nil && len(m.Data) > 0 {
				t.Errorf("%s pulled %s's work: %s", user, d, m.Data)
			}
			_ = sub.Unsubscribe()
		}
	}
	// The work is still there for the provisioner.
	for _, d := range []struct{ stream, durable string }{
		{events.Stream, "provisioner"}, {events.DeadLetterStream, "provisioner" + events.RedriveDurableSuffix},
	} {
		c, err := ajs.Consumer(ctx, d.stream, d.durable)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := c.Info(ctx); err != nil || info.NumPending != 1 || info.Delivered.Consumer != 0 {
			t.Errorf("%s: %+v %v, want one message never delivered", d.durable, info, err)
		}
	}
}

// TestRepliesAreTheirOwn: each service identity reads replies on its own
// inbox prefix only. Before, any service identity could subscribe to
// _INBOX.> and read the API's replies (session records from KV among
// them); and only the API asks the provisioner for a container's logs,
// only the provisioner answers.
func TestRepliesAreTheirOwn(t *testing.T) {
	connect := bus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	api, provisioner := connect("api"), connect("provisioner")
	// The provisioner answers logs requests; the API's request is answered.
	_, err := provisioner.Subscribe(events.LogsSubject, func(m *nats.Msg) { _ = m.Respond([]byte("some logs")) })
	require.NoError(t, err)
	require.NoError(t, provisioner.Flush())

	for _, snoop := range []string{"reaper", "router-sync", "provisioner"} {
		nc := connect(snoop)
		for _, subject := range []string{"_INBOX.>", events.InboxPrefix("api") + ".>", ">"} {
			sub, err := nc.SubscribeSync(subject)
			require.NoError(t, err) // refused asynchronously by the server
			require.NoError(t, nc.Flush())
			reply, err := api.RequestWithContext(ctx, events.LogsSubject, []byte(`{}`))
			require.NoError(t, err, "the API's logs request")
			assert.Equal(t, "some logs", string(reply.Data))
			_, err = sub.NextMsg(200 * time.Millisecond)
			assert.Error(t, err, "%s read the API's reply on %s", snoop, subject)
		}
	}
	// The reaper may not ask for logs, nor answer them.
	reaper := connect("reaper")
	short, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	_, err = reaper.RequestWithContext(short, events.LogsSubject, []byte(`{}`))
	assert.Error(t, err, "the reaper asked for a workspace's logs")
	// Its own requests still work: JetStream answers on its inbox.
	js, err := jetstream.New(reaper)
	require.NoError(t, err)
	_, err = eventlog.Open(ctx, api, eventlog.Options{}) // declares the stream
	require.NoError(t, err)
	_, err = js.Stream(ctx, events.Stream)
	require.NoError(t, err, "the reaper's own replies no longer reach it")
	// It watches the activity bucket (deliveries to its own inbox).
	require.NoError(t, platformbus.Declare(ctx, mustJS(t, api), platformbus.Options{}))
	w, err := activity.Watch(ctx, js, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	_, _, err = w.LastSeen(ctx, "some-workspace")
	require.NoError(t, err, "the reaper's watch of the activity bucket loads")
}

func mustJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// TestAPIPublishesToNoOtherInbox: the API's identity publishes only where
// it must. Not on another identity's inbox prefix, the default _INBOX, an
// unregistered system's inbox, a bucket that is not its own, a system's
// intake subject, an observation's subject or anywhere else (the server
// refuses each, and a subscriber to everything receives none), while a
// registered system's inbox, where the intake answers, still gets its
// reply. Before, the API could publish almost anywhere, so a reply subject
// a sender forged reached a service's pending request.
func TestAPIPublishesToNoOtherInbox(t *testing.T) {
	b := newBus(t, "lms")
	violations := make(chan string, 16)
	api, err := nats.Connect(b.url, nats.UserInfo("api", b.passwords["api"]), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		violations <- err.Error()
	}))
	require.NoError(t, err)
	defer api.Close()
	ops := b.connect("ops")
	all, err := ops.SubscribeSync(">")
	require.NoError(t, err)
	require.NoError(t, ops.Flush())

	var denied []string
	for _, user := range natsbus.Identities {
		if user != "api" {
			denied = append(denied, events.InboxPrefix(user)+".probe")
		}
	}
	denied = append(denied, "_INBOX.probe", events.InboxPrefix(events.SystemUser("other"))+".probe",
		"$KV."+events.ServiceStatusBucket+".provisioner.x", events.IntakeSystemSubject("lms"),
		events.WorkspaceSubject("w1", events.TypeRunning), "$JS.API.STREAM.PURGE."+events.Stream, "elsewhere.probe")
	for _, subject := range denied {
		require.NoError(t, api.Publish(subject, []byte("forged")))
	}
	allowed := events.InboxPrefix(events.SystemUser("lms")) + ".reply"
	require.NoError(t, api.Publish(allowed, []byte("answer")))
	require.NoError(t, api.Flush())

	// Messages from one connection arrive in order: everything before the
	// allowed reply has arrived when it does.
	var got []string
	for {
		m, err := all.NextMsg(5 * time.Second)
		require.NoError(t, err, "the reply to a registered system's inbox arrives")
		if m.Subject == allowed {
			break
		}
		got = append(got, m.Subject)
	}
	for _, subject := range denied {
		assert.NotContains(t, got, subject, "the API published on %s", subject)
	}
	seen := map[string]bool{}
	for len(seen) < len(denied) {
		select {
		case v := <-violations:
			for _, subject := range denied {
				if strings.Contains(v, `"`+subject+`"`) {
					seen[subject] = true
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the server refused only %v of %v", seen, denied)
		}
	}
}
