package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestClusterNodeKilledDuringLaunches (issue 16): on a three-node NATS
// cluster with the log at three replicas, 100 workspaces are launched and
// stopped through the real provisioner and Docker Engine, and the log's
// leader is killed once a third of them run. Every acknowledged request
// is in the log exactly once, every workspace ends as its last request
// asked (stopped), the log folds without an illegal transition, and no
// workspace ever has a second container.
func TestClusterNodeKilledDuringLaunches(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.EnsureImages(t, cli)
	nodes := natstest.Cluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.ClientURL())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	var l *eventlog.Log
	require.Eventually(t, func() bool { // until the cluster has elected its leaders
		octx, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		l, err = eventlog.Open(octx, nc, eventlog.Options{Replicas: 3})
		return err == nil
	}, 90*time.Second, 250*time.Millisecond, "declare on the cluster: %v", err)
	w := newWorldOn(t, cli, nodes[0], strings.Join(urls, ","), l)
	w.startProvisioner("--stop-drain", "0s", "--stop-timeout", "2s")

	var (
		mu    sync.Mutex
		acked = map[string]string{} // event id -> workspace
	)
	// request appends p until the log acknowledges it, across the
	// failover: an attempt whose answer was lost is found in the log.
	request := func(id string, p events.Payload) error {
		e, err := events.New(id, p, events.Meta{Source: "test", Actor: "user:test"}, time.Now())
		if err != nil {
			return err
		}
		for attempt := 0; ; attempt++ {
			if attempt == 600 {
				return fmt.Errorf("%s for %s never acknowledged", p.EventType(), id)
			}
			evs, last, err := l.ReadAll(ctx, id)
			if err == nil && slices.ContainsFunc(evs, func(x events.Envelope) bool { return x.ID == e.ID }) {
				break
			}
			if err == nil {
				actx, stop := context.WithTimeout(ctx, 5*time.Second)
				_, err = l.Append(actx, e, last)
				stop()
				if err == nil {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		acked[e.ID] = id
		mu.Unlock()
		return nil
	}
	// Statuses come from one projection following the log, as a service's
	// would: a hundred pollers reading the log would starve the race-built
	// cluster of its two cores.
	proj := w.projection()
	status := func(id string) events.Status {
		ws, _ := proj.Workspace(id)
		return ws.Status
	}

	const n = 100
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	w.ids = append(w.ids, ids...)
	var running atomic.Int64
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := request(id, &events.Created{Name: fmt.Sprintf("c%03d", i), Image: dockertest.DemoImage, Owner: "alice", Projects: []string{},
				Resources: events.Resources{MemoryBytes: 64 << 20, MilliCPUs: 250, Pids: 64}})
			if err == nil {
				err = request(id, &events.StartRequested{})
			}
			for err == nil {
				st := status(id)
				if st == events.StatusRunning {
					break
				}
				if st == events.StatusError || ctx.Err() != nil {
					ws, _ := proj.Workspace(id)
					err = fmt.Errorf("workspace %s %s: %q (failure %+v), never running", id, ws.Name, st, ws.Failure)
				}
				time.Sleep(200 * time.Millisecond)
			}
			running.Add(1)
			if err == nil {
				err = request(id, &events.StopRequested{})
			}
			errs <- err
		}()
	}
	killed := make(chan string, 1)
	go func() {
		for running.Load() < n/3 && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
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
	t.Logf("killed %s, the log's leader, once %d of %d workspaces ran", leader, n/3, n)

	deadline := time.Now().Add(5 * time.Minute)
	for _, id := range ids {
		for status(id) != events.StatusStopped {
			require.True(t, time.Now().Before(deadline), "workspace %s: %q, want stopped", id, status(id))
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Reads are direct gets, which a replica may answer while it catches
	// up; by now every workspace read stopped, so the log has settled.
	seen := map[string]int{}
	for _, id := range ids {
		var evs []events.Envelope
		want, _ := proj.Workspace(id)
		require.Eventually(t, func() bool { // a replica's direct get may trail the projection briefly
			var last uint64
			evs, last, err = l.ReadAll(ctx, id)
			return err == nil && last >= want.Version
		}, 30*time.Second, 100*time.Millisecond, "read %s: %v", id, err)
		_, err = events.Fold(evs)
		require.NoError(t, err, "the log of %s folds", id)
		for _, e := range evs {
			seen[e.ID]++
		}
		require.LessOrEqual(t, len(w.containers(id)), 1, "workspace %s has a second container", id)
	}
	for id, ws := range acked {
		require.Equal(t, 1, seen[id], "acknowledged event %s of %s in the log %d times", id, ws, seen[id])
	}
}
