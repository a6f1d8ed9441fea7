package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cluster starts three embedded JetStream servers routed to each other.
func cluster(t *testing.T) []*server.Server {
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var out []*server.Server
	for i, p := range ports {
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "berth", Host: "127.0.0.1", Port: p},
			Routes:  routes,
		})
		require.NoError(t, err)
		go srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		out = append(out, srv)
	}
	for _, srv := range out {
		require.True(t, srv.ReadyForConnections(10*time.Second))
	}
	return out
}

// TestEveryDeclarationHasThreeReplicas: on a three-node cluster, the API's
// declarations (through the log's Open, as the API does it) give every
// stream and bucket Berth declares three replicas, from the one setting;
// a consumer's durable state follows its stream. Nothing else is declared.
func TestEveryDeclarationHasThreeReplicas(t *testing.T) {
	nodes := cluster(t)
	nc, err := nats.Connect(nodes[0].ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	// Generous bounds: under make test's parallel -race load a three-node
	// cluster elects its leaders slowly (it takes seconds when idle).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var l *eventlog.Log
	require.Eventually(t, func() bool { // until the cluster has elected its meta leader
		octx, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		l, err = eventlog.Open(octx, nc, eventlog.Options{Replicas: 3})
		return err == nil
	}, 90*time.Second, 250*time.Millisecond, "declare on the cluster: %v", err)

	consumed := make(chan struct{})
	cctx, stopConsuming := context.WithCancel(ctx)
	go func() {
		defer close(consumed)
		for cctx.Err() == nil { // as the service's supervisor does: a cluster under load may time a request out
			_ = l.Consume(cctx, slog.New(slog.DiscardHandler), eventlog.DurableOptions{Name: "provisioner"},
				func(context.Context, events.Envelope, int, bool) error { return nil })
			select {
			case <-cctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopConsuming(); <-consumed })

	js := l.JetStream()
	want := []string{}
	for _, s := range bus.Streams(bus.Options{}) {
		want = append(want, s.Name)
	}
	for _, b := range bus.Buckets(bus.Options{}) {
		want = append(want, "KV_"+b.Bucket)
	}
	var got []string
	for info := range js.ListStreams(ctx).Info() {
		got = append(got, info.Config.Name)
		assert.Equal(t, 3, info.Config.Replicas, "stream %s", info.Config.Name)
		require.NotNil(t, info.Cluster, "stream %s", info.Config.Name)
		assert.Len(t, info.Cluster.Replicas, 2, "stream %s: a leader and two followers", info.Config.Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	assert.Equal(t, want, got, "exactly what bus declares")

	for _, c := range []struct{ stream, durable string }{
		{events.Stream, "provisioner"}, {events.DeadLetterStream, "provisioner" + events.RedriveDurableSuffix},
	} {
		var (
			info *jetstream.ConsumerInfo
			last error
		)
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			lctx, stop := context.WithTimeout(ctx, 5*time.Second)
			var cons jetstream.Consumer
			if cons, last = js.Consumer(lctx, c.stream, c.durable); last == nil {
				info, last = cons.Info(lctx)
			}
			stop()
			if last == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s on %s never had three replicas: %v %+v", c.durable, c.stream, last, info)
			}
		}
	}
}
