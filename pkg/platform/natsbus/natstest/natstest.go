// Package natstest starts a real in-process nats-server with JetStream on a
// temporary directory for tests.
package natstest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// Cluster starts three embedded JetStream servers routed to each other (a
// cluster named berth, nodes n1 to n3, on loopback); they are shut down
// when the test ends. A test may shut one down to see the others go on.
func Cluster(t testing.TB) []*server.Server {
	t.Helper()
	var ports []int
	var routes []*url.URL
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ports = append(ports, port)
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", port)})
	}
	var out []*server.Server
	for i, p := range ports {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "berth", Host: "127.0.0.1", Port: p},
			Routes:  routes,
		})
		if err != nil {
			t.Fatalf("nats node %d: %v", i+1, err)
		}
		go srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		out = append(out, srv)
	}
	for _, srv := range out {
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("nats node %s not ready", srv.Name())
		}
	}
	return out
}

// KillLeader shuts down the node leading stream on nodes (as a crash
// would, with no goodbye) and returns its name.
func KillLeader(ctx context.Context, js jetstream.JetStream, nodes []*server.Server, stream string) (string, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("stream %s: %w", stream, err)
	}
	if si.Cluster == nil {
		return "", fmt.Errorf("stream %s is not clustered", stream)
	}
	for _, n := range nodes {
		if n.Name() == si.Cluster.Leader {
			n.Shutdown()
			return n.Name(), nil
		}
	}
	return "", fmt.Errorf("leader %q of %s is none of the nodes", si.Cluster.Leader, stream)
}
