package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestRateLimitPerCaller: a caller over its limit gets 429 with Retry-After,
// while another caller, forwardAuth and the health routes are unaffected.
func TestRateLimitPerCaller(t *testing.T) {
	e := newEnv(t)
	// Bursts of 3, then one request per 10 s: nothing refills during the test.
	a := e.startAPI("--api-rate", "0.1", "--api-burst", "3")
	alice, bob := e.token("alice", "user"), e.token("bob", "user")

	for range 3 {
		require.Equal(t, http.StatusOK, a.do("GET", "/api/v1/workspaces", alice, nil).Status)
	}
	r := a.do("GET", "/api/v1/workspaces", alice, nil)
	expectProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", r.Header.Get("Retry-After"))
	assert.True(t, retry >= 1 && retry <= 10, "Retry-After %d", retry)
	expectProblem(t, a.do("POST", "/api/v1/workspaces/launch", alice, nil), http.StatusTooManyRequests, "rate_limited")

	for range 3 {
		assert.Equal(t, http.StatusOK, a.do("GET", "/api/v1/workspaces", bob, nil).Status, "bob has his own bucket")
	}
	for range 5 {
		// Traefik asks on every workspace request; a 404 (no such workspace) is the answer, not a 429.
		assert.Equal(t, http.StatusNotFound, a.do("GET", "/api/v1/auth/forward?workspace=nope", alice, nil).Status)
		assert.Equal(t, http.StatusOK, a.do("GET", "/healthz", "", nil).Status)
	}

	// Without a token the client address is the caller.
	for range 3 {
		require.Equal(t, http.StatusOK, a.do("GET", "/api/v1/openapi.yaml", "", nil).Status)
	}
	expectProblem(t, a.do("GET", "/api/v1/openapi.yaml", "", nil), http.StatusTooManyRequests, "rate_limited")
	expectProblem(t, a.do("GET", "/api/v1/me", "not-a-token", nil), http.StatusTooManyRequests, "rate_limited")
}

// streamConsumers is how many consumers the log's stream has now.
func (e *env) streamConsumers() int {
	e.t.Helper()
	js, err := jetstream.New(natstest.Conn(e.t, e.nats))
	require.NoError(e.t, err)
	s, err := js.Stream(context.Background(), events.Stream)
	require.NoError(e.t, err)
	info, err := s.Info(context.Background())
	require.NoError(e.t, err)
	return info.State.Consumers
}

// parallelReads sends n history reads at once and counts the statuses;
// every 429 must carry Retry-After.
func (a *api) parallelReads(n int, token, path string) map[int]int {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[int]int{}
	)
	for range n {
		wg.Go(func() {
			r := a.do("GET", path, token, nil)
			if r.Status == http.StatusTooManyRequests {
				assert.NotEmpty(a.e.t, r.Header.Get("Retry-After"))
			}
			mu.Lock()
			counts[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts
}

// TestHistoryReadsOpenNoConsumers: 100 parallel history reads by one user
// leave the stream's consumers as they were, and each read is answered
// (or rate limited), never 503. Before reads used direct gets, every read
// left a consumer behind for 5 minutes and the stream ran out of them.
func TestHistoryReadsOpenNoConsumers(t *testing.T) {
	e := newEnv(t)
	open := e.startAPI() // the harness turns limits off
	limited := e.startAPI("--api-rate", "20", "--api-burst", "40")
	// Parallel requests leave dialled but unused connections, which hold
	// up the servers' graceful shutdown for 5 s; close them first.
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	admin, alice, bob := e.token("root", "admin"), e.token("alice", "user"), e.token("bob", "user")
	open.addImage(admin, demoImage)
	r := open.do("POST", "/api/v1/workspaces/launch", alice, nil)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	path := wsPath(r.str(t, "id"), "/events")
	require.Eventually(t, func() bool { return limited.do("GET", path, admin, nil).Status == http.StatusOK },
		5*time.Second, 20*time.Millisecond, "the second API sees the workspace")
	before := e.streamConsumers()

	counts := open.parallelReads(100, alice, path)
	assert.Equal(t, map[int]int{http.StatusOK: 100}, counts, "without a limit every read is answered")

	counts = limited.parallelReads(100, alice, path)
	t.Logf("with the default limits: %v", counts)
	assert.Equal(t, 100, counts[http.StatusOK]+counts[http.StatusTooManyRequests], "only 200 or 429: %v", counts)
	assert.GreaterOrEqual(t, counts[http.StatusOK], 40, "at least the burst is served: %v", counts)
	assert.Equal(t, http.StatusOK, limited.do("GET", "/api/v1/workspaces", bob, nil).Status, "another user is unaffected")

	assert.Equal(t, before, e.streamConsumers(), "history reads must not create consumers")
}

// history is one decoded history page.
type history struct {
	Events []struct {
		Sequence    uint64 `json:"sequence"`
		Type        string `json:"type"`
		Actor       string `json:"actor"`
		CausationID string `json:"causationid"`
	} `json:"events"`
	Next *uint64 `json:"next"`
}

func (a *api) history(token, path string) history {
	a.e.t.Helper()
	r := a.do("GET", path, token, nil)
	require.Equal(a.e.t, http.StatusOK, r.Status, "%s", r.Body)
	var h history
	require.NoError(a.e.t, json.Unmarshal(r.Body, &h))
	return h
}

// TestHistoryPaging: pages of limit events, joined by next, are the whole
// history in order; the default page is 100; bad values are 400.
func TestHistoryPaging(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	a.addImage(admin, demoImage)
	r := a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "paged", "owner": "alice"})
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	id := r.str(t, "id")
	var cycle []events.Payload
	for range 26 { // 1 + 26*4 = 105 events
		cycle = append(cycle, &events.StartRequested{}, &events.Running{ContainerID: "c", IP: "10.0.0.9", Port: 8080},
			&events.StopRequested{}, &events.Stopped{})
	}
	e.provisionerSays(id, cycle...)

	first := a.history(alice, wsPath(id, "/events"))
	require.Len(t, first.Events, 100, "default page size")
	require.NotNil(t, first.Next)
	assert.Equal(t, first.Events[99].Sequence, *first.Next)
	rest := a.history(alice, wsPath(id, fmt.Sprintf("/events?after=%d", *first.Next)))
	require.Len(t, rest.Events, 5)
	assert.Nil(t, rest.Next, "the last page has no next")

	var seqs []uint64
	pages := 0
	for after := uint64(0); ; pages++ {
		h := a.history(alice, wsPath(id, fmt.Sprintf("/events?after=%d&limit=7", after)))
		require.LessOrEqual(t, len(h.Events), 7)
		for _, ev := range h.Events {
			seqs = append(seqs, ev.Sequence)
		}
		if h.Next == nil {
			break
		}
		after = *h.Next
	}
	assert.Equal(t, 15, pages+1, "105 events in pages of 7")
	require.Len(t, seqs, 105)
	for i := 1; i < len(seqs); i++ {
		assert.Less(t, seqs[i-1], seqs[i], "oldest first, no event twice")
	}
	assert.Equal(t, append(first.Events, rest.Events...)[104].Sequence, seqs[104])

	past := a.history(alice, wsPath(id, fmt.Sprintf("/events?after=%d", seqs[104])))
	assert.Empty(t, past.Events)
	assert.Nil(t, past.Next)
	assert.Len(t, a.history(alice, wsPath(id, "/events?limit=1000")).Events, 105)

	for _, q := range []string{"limit=0", "limit=1001", "limit=-1", "limit=ten", "after=-1", "after=x", "after=9223372036854775808"} {
		expectProblem(t, a.do("GET", wsPath(id, "/events?"+q), alice, nil), http.StatusBadRequest, "invalid_query")
	}
}
