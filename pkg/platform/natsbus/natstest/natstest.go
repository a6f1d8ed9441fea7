// Package natstest starts a real in-process nats-server with JetStream on a
// temporary directory for tests.
package natstest

import (
	"log/slog"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// Server starts an embedded server on a free loopback port; it is shut down
// when the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return ServerAt(t, t.TempDir())
}

// ServerAt starts a server on storeDir, so a test can restart it on the
// same data.
func ServerAt(t testing.TB, storeDir string) *server.Server {
	t.Helper()
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:-1", StoreDir: storeDir})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv.Server
}

// Conn connects to srv; the connection is closed when the test ends.
func Conn(t testing.TB, srv *server.Server) *nats.Conn {
	t.Helper()
	nc, err := natsbus.Connect(srv.ClientURL(), t.Name(), natsbus.Identity{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
