package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestEveryDeclarationHasThreeReplicas: on a three-node cluster, the API's
// declarations (through the log's Open, as the API does it) give every
// stream and bucket Berth declares three replicas, from the one setting;
// a consumer's durable state follows its stream. Nothing else is declared.
func TestEveryDeclarationHasThreeReplicas(t *testing.T) {
	nodes := natstest.Cluster(t)
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

// TestKillANodeWhileWriting: on a three-node cluster with the log at R3,
// the node leading the log is killed while 20 workspaces take 200 start
// and stop requests. A writer retries an append that got no answer with
// the same event id (as the API's requests do); afterwards every
// acknowledged event is in the log exactly once, and every workspace's
// last event is the last request its writer had acknowledged.
func TestKillANodeWhileWriting(t *testing.T) {
	nodes := natstest.Cluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var l *eventlog.Log
	require.Eventually(t, func() bool {
		octx, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		l, err = eventlog.Open(octx, nc, eventlog.Options{Replicas: 3})
		return err == nil
	}, 90*time.Second, 250*time.Millisecond, "declare on the cluster: %v", err)

	const workspaces, requests = 20, 10
	var (
		mu     sync.Mutex
		acked  = map[string]string{} // event id -> workspace
		last   = map[string]events.Type{}
		done   atomic.Int64
		killed = make(chan string, 1)
	)
	// appendAcked appends e after expected until the log acknowledges it.
	appendAcked := func(e events.Envelope, expected uint64) (uint64, error) {
		for attempt := 0; ; attempt++ {
			actx, stop := context.WithTimeout(ctx, 5*time.Second)
			seq, err := l.Append(actx, e, expected)
			stop()
			switch {
			case err == nil:
				return seq, nil
			case errors.Is(err, eventlog.ErrConflict):
				// An earlier attempt landed but its answer was lost, and
				// the retry came after the dedupe state moved: the log
				// holds it if its last event is this one.
				evs, lastSeq, rerr := l.ReadAll(ctx, e.Subject)
				if rerr == nil && len(evs) > 0 && evs[len(evs)-1].ID == e.ID {
					return lastSeq, nil
				}
				return 0, fmt.Errorf("%s: conflict and not in the log: %w", e.ID, err)
			case attempt > 100:
				return 0, fmt.Errorf("%s never acknowledged: %w", e.ID, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workspaces)
	for w := range workspaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", w)
			meta := events.Meta{Source: "test", Actor: "user:o"}
			e, _ := events.New(id, &events.Created{Name: fmt.Sprintf("w%d", w), Owner: "o", Projects: []string{}}, meta, time.Now())
			version, err := appendAcked(e, 0)
			if err != nil {
				errs <- err
				return
			}
			for i := range requests {
				var p events.Payload = &events.StartRequested{}
				if i%2 == 1 {
					p = &events.StopRequested{}
				}
				e, _ := events.New(id, p, meta, time.Now())
				if version, err = appendAcked(e, version); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[e.ID], last[id] = id, e.Type
				mu.Unlock()
				done.Add(1)
			}
		}()
	}
	// Kill the log's leader once a third of the requests are in.
	go func() {
		for done.Load() < workspaces*requests/3 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		name, err := natstest.KillLeader(ctx, l.JetStream(), nodes, events.Stream)
		if err != nil {
			name = "none: " + err.Error()
		}
		killed <- name
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	leader := <-killed
	require.False(t, strings.HasPrefix(leader, "none"), "no node was killed: %s", leader)
	t.Logf("killed %s, the log's leader, after %d of %d requests", leader, workspaces*requests/3, workspaces*requests)

	// Every acknowledged event exactly once; each workspace ends as its
	// last acknowledged request asked. Reads are direct gets, which a
	// replica may answer while it catches up: read until they agree.
	readAll := func() (map[string]int, map[string]events.Type, error) {
		seen, lastInLog := map[string]int{}, map[string]events.Type{}
		for from := uint64(1); from != 0; {
			page, next, err := l.ReadLog(ctx, from, 1000)
			if err != nil {
				return nil, nil, err
			}
			for _, e := range page {
				seen[e.ID]++
				lastInLog[e.Subject] = e.Type
			}
			from = next
		}
		return seen, lastInLog, nil
	}
	require.Len(t, acked, workspaces*requests)
	var (
		seen      map[string]int
		lastInLog map[string]events.Type
	)
	consistent := func() bool {
		if seen, lastInLog, err = readAll(); err != nil {
			return false
		}
		for id := range acked {
			if seen[id] != 1 {
				return false
			}
		}
		for ws, typ := range last {
			if lastInLog[ws] != typ {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !consistent() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err)
	for id := range acked {
		assert.Equal(t, 1, seen[id], "event %s", id)
	}
	for ws, typ := range last {
		assert.Equal(t, typ, lastInLog[ws], "workspace %s", ws)
	}
}
