package installation_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/installation"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestResolve: services racing on a fresh NATS agree on one generated id,
// which survives; a configured id wins; a bad one is refused.
func TestResolve(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(natstest.Conn(t, natstest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := installation.Resolve(ctx, js, ""); !errors.Is(err, bus.ErrNotDeclared) {
		t.Fatalf("before the API declared the bucket: %v, want bus.ErrNotDeclared", err)
	}
	if err := bus.Declare(ctx, js, bus.Options{}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := installation.Resolve(ctx, js, "")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || installation.Validate(id) != nil {
			t.Fatalf("ids %v: want one valid id", ids)
		}
	}
	if again, _ := installation.Resolve(ctx, js, ""); again != ids[0] {
		t.Fatalf("id changed: %s then %s", ids[0], again)
	}
	if got, err := installation.Resolve(ctx, js, "staging"); got != "staging" || err != nil {
		t.Fatalf("configured: %q %v", got, err)
	}
	if _, err := installation.Resolve(ctx, js, "Bad Id!"); err == nil {
		t.Fatal("bad configured id accepted")
	}
}

// TestStoredIDIsValidated: an id someone wrote into the bucket that is not
// an installation id (the reply text of a forged intake command, say) is
// refused with a clear error, never used to label or sweep objects.
func TestStoredIDIsValidated(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(natstest.Conn(t, natstest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Declare(ctx, js, bus.Options{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, installation.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`{"accepted":false,"code":"not_json"}`, "", "ABC", "a*", "a b"} {
		if _, err := kv.Put(ctx, "id", []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if id, err := installation.Resolve(ctx, js, ""); err == nil {
			t.Errorf("stored %q was used as %q", bad, id)
		}
	}
	if _, err := kv.Put(ctx, "id", []byte("a1b2c3")); err != nil {
		t.Fatal(err)
	}
	if id, err := installation.Resolve(ctx, js, ""); err != nil || id != "a1b2c3" {
		t.Errorf("a good stored id: %q, %v", id, err)
	}
}
