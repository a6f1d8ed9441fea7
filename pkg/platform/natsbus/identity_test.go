package natsbus_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// TestBusIdentities: the embedded bus lets in only its identities (a
// client without credentials, or with a wrong password, used to publish
// anything and the provisioner obeyed); router-sync's identity reads the
// log but cannot append to it or change it; the provisioner's cannot write
// the catalog.
func TestBusIdentities(t *testing.T) {
	b := newBus(t)
	dir, passwords := b.dir, b.passwords
	info, err := os.Stat(natsbus.PasswordFile(dir, "api"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", info, err)
	}
	again, _ := natsbus.EnsurePasswords(dir)
	if again["api"] != passwords["api"] {
		t.Fatal("passwords changed on a second start")
	}
	for name, opts := range map[string][]nats.Option{
		"no credentials": nil,
		"wrong password": {nats.UserInfo("api", "guess")},
		"unknown user":   {nats.UserInfo("root", passwords["api"])},
	} {
		if nc, err := nats.Connect(b.url, append(opts, nats.Timeout(2*time.Second))...); err == nil {
			nc.Close()
			t.Errorf("%s: let in", name)
		}
	}
	connect := b.connect
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	api, err := eventlog.Open(ctx, connect("api"), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	e, _ := events.New(id, &events.Created{Name: "w", Owner: "alice", Projects: []string{}}, events.Meta{Source: "test", Actor: "user:alice"}, time.Now())
	if _, err := api.Append(ctx, e, 0); err != nil {
		t.Fatalf("api append: %v", err)
	}

	// router-sync: reads and follows, never writes.
	rsConn := connect("router-sync")
	denied, stopDenied := context.WithTimeout(ctx, 2*time.Second) // a refused request is never answered
	defer stopDenied()
	if _, err := eventlog.Open(denied, rsConn, eventlog.Options{}); err == nil {
		t.Error("router-sync may create or update the stream")
	}
	rs, err := eventlog.Open(ctx, rsConn, eventlog.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("router-sync read-only open: %v", err)
	}
	if evs, err := rs.Read(ctx, id); err != nil || len(evs) != 1 {
		t.Fatalf("router-sync read: %d events, %v", len(evs), err)
	}
	proj := events.NewProjection()
	if err := rs.Replay(ctx, slog.New(slog.DiscardHandler), proj); err != nil {
		t.Fatalf("router-sync follow: %v", err)
	}
	if _, ok := proj.Workspace(id); !ok {
		t.Fatal("router-sync's projection misses the workspace")
	}
	forged, _ := events.New(id, &events.StartRequested{}, events.Meta{Source: "forger", Actor: "user:root"}, time.Now())
	short, stop := context.WithTimeout(ctx, 2*time.Second)
	defer stop()
	if _, err := rs.Append(short, forged, 1); err == nil {
		t.Error("router-sync appended to the log")
	}
	if evs, _ := api.Read(ctx, id); len(evs) != 1 {
		t.Errorf("the log has %d events, want 1", len(evs))
	}

	// The provisioner may append observations, not catalog events.
	prov, err := eventlog.Open(ctx, connect("provisioner"), eventlog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := events.New(events.CatalogSubject, &events.ImageAdded{Ref: "evil:1", CapAdd: []string{}}, events.Meta{Source: "forger", Actor: "user:root"}, time.Now())
	short2, stop2 := context.WithTimeout(ctx, 2*time.Second)
	defer stop2()
	if _, err := prov.Append(short2, img, 0); err == nil {
		t.Error("the provisioner wrote the catalog")
	}
	// Nor reshape the log (a subject transform would turn its appends into
	// catalog writes).
	pjs, _ := jetstream.New(connect("provisioner"))
	short3, stop3 := context.WithTimeout(ctx, 2*time.Second)
	defer stop3()
	if _, err := pjs.UpdateStream(short3, jetstream.StreamConfig{Name: events.Stream, Subjects: events.StreamSubjects, Storage: jetstream.FileStorage}); err == nil {
		t.Error("the provisioner updated the log's stream")
	}
	js, _ := jetstream.New(connect("ops"))
	if _, err := js.Stream(ctx, events.Stream); err != nil {
		t.Errorf("ops cannot read the stream: %v", err)
	}
}

// TestConnectWaitsForItsPassword: under make run a service may start before
// the API has written the passwords; it keeps trying and gets in once the
// file is there, instead of giving up after two refusals.
func TestConnectWaitsForItsPassword(t *testing.T) {
	dir := t.TempDir()
	passwords, err := natsbus.EnsurePasswords(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: t.TempDir(), Users: natsbus.Users(passwords)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	file := natsbus.PasswordFile(dir, "reaper")
	nc, err := natsbus.Connect(srv.ClientURL(), "reaper", natsbus.Identity{User: "reaper", PasswordFile: file}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	time.Sleep(1500 * time.Millisecond) // several refused attempts
	if nc.IsConnected() {
		t.Fatal("connected without a password")
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(passwords["reaper"]), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !nc.IsConnected() {
		if time.Now().After(deadline) || nc.IsClosed() {
			t.Fatalf("not connected once the password is there (status %v)", nc.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
