package main

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestNamesCannotBeSquatted: bob created a workspace named frank, and
// frank's "Launch workspace" answered 409 name_taken forever. Names are now
// in each user's namespace (frank, frank--*), and a launch whose home name
// someone else holds gets frank--home instead of a refusal.
func TestNamesCannotBeSquatted(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, bob, frank, carol := e.token("root", "admin"), e.token("bob", "user"), e.token("frank", "user"), e.token("carol", "user")
	a.addImage(admin, demoImage)

	r := a.do("POST", "/api/v1/workspaces", bob, map[string]any{"name": "frank"})
	expectProblem(t, r, http.StatusUnprocessableEntity, "validation_failed")
	assert.Contains(t, r.fieldCodes(t), "name_outside_namespace")
	expectProblem(t, a.do("POST", "/api/v1/workspaces/launch", bob, map[string]any{"name": "frank"}), http.StatusUnprocessableEntity, "validation_failed")
	expectProblem(t, a.do("POST", "/api/v1/workspaces", bob, map[string]any{"name": "frank--x"}), http.StatusUnprocessableEntity, "validation_failed")
	require.Equal(t, http.StatusCreated, a.do("POST", "/api/v1/workspaces", bob, map[string]any{"name": "bob--frank"}).Status)

	r = a.do("POST", "/api/v1/workspaces/launch", frank, nil)
	require.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}, r.Status, "%s", r.Body)
	assert.Equal(t, "frank", r.str(t, "name"))

	// A home name someone else already holds (made before names had
	// namespaces, or by an admin) does not block the launch either.
	require.Equal(t, http.StatusCreated, a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "carol", "owner": "bob"}).Status)
	r = a.do("POST", "/api/v1/workspaces/launch", carol, nil)
	require.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}, r.Status, "%s", r.Body)
	assert.Equal(t, "carol--home", r.str(t, "name"))
	again := a.do("POST", "/api/v1/workspaces/launch", carol, nil)
	assert.Equal(t, r.str(t, "id"), again.str(t, "id"), "the next launch finds the same workspace")

	// Subjects that are not DNS labels get a hash, so two never share a home.
	one := a.do("POST", "/api/v1/workspaces/launch", e.token("dave@x.com", "user"), nil)
	two := a.do("POST", "/api/v1/workspaces/launch", e.token("dave.x.com", "user"), nil)
	require.Contains(t, []int{http.StatusOK, http.StatusCreated, http.StatusAccepted}, two.Status, "%s", two.Body)
	assert.True(t, strings.HasPrefix(one.str(t, "name"), "dave-x-com-"), one.str(t, "name"))
	assert.NotEqual(t, one.str(t, "name"), two.str(t, "name"))
}

// TestQuotas: a user could create and start as many workspaces as they
// liked. Now each has limits (defaults here: 2 workspaces, 1 running),
// admins override them per user (an event in the log), and parallel
// requests cannot take more than the limit.
func TestQuotas(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--quota-workspaces", "2", "--quota-running", "1")
	admin, alice, bob := e.token("root", "admin"), e.token("alice", "user"), e.token("bob", "user")
	a.addImage(admin, demoImage)

	first := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice"})
	second := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--two"})
	require.Equal(t, http.StatusCreated, second.Status, "%s", second.Body)
	r := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--three"})
	expectProblem(t, r, http.StatusConflict, "quota_workspaces_exceeded")
	assert.Contains(t, r.str(t, "detail"), "you have 2 workspaces and may have 2")

	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(first.str(t, "id"), "/start"), alice, nil).Status)
	r = a.do("POST", wsPath(second.str(t, "id"), "/start"), alice, nil)
	expectProblem(t, r, http.StatusConflict, "quota_running_exceeded")
	assert.Contains(t, r.str(t, "detail"), "1 workspaces running and may run 1")
	// Starting what already runs is not a new start.
	assert.Equal(t, http.StatusAccepted, a.do("POST", wsPath(first.str(t, "id"), "/start"), alice, nil).Status)
	// Admins act for the installation and are not limited.
	assert.Equal(t, http.StatusCreated, a.do("POST", "/api/v1/workspaces", admin, map[string]any{"name": "alice--by-admin", "owner": "alice"}).Status)

	q := a.do("GET", "/api/v1/users/alice/quota", alice, nil)
	require.Equal(t, http.StatusOK, q.Status, "%s", q.Body)
	assert.EqualValues(t, map[string]any{"limit": 2.0, "used": 3.0}, q.json(t)["workspaces"])
	expectProblem(t, a.do("GET", "/api/v1/users/alice/quota", bob, nil), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("PUT", "/api/v1/users/alice/quota", alice, map[string]any{"running": 5}), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("PUT", "/api/v1/users/alice/quota", admin, map[string]any{"running": -1}), http.StatusUnprocessableEntity, "validation_failed")

	// An override lets alice run two; it is an audited event.
	r = a.do("PUT", "/api/v1/users/alice/quota", admin, map[string]any{"running": 2})
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.Equal(t, true, r.json(t)["override"])
	assert.Equal(t, http.StatusAccepted, a.do("POST", wsPath(second.str(t, "id"), "/start"), alice, nil).Status)
	l, err := eventlog.Open(context.Background(), natstest.Conn(t, e.nats), eventlog.Options{})
	require.NoError(t, err)
	evs, err := l.Read(context.Background(), events.UsersSubject)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, events.TypeQuotaSet, evs[0].Type)
	assert.Equal(t, "user:root", evs[0].Actor)

	// A restarted API keeps the override (it is folded from the log).
	a.stop()
	a = e.startAPI("--quota-workspaces", "2", "--quota-running", "1")
	q = a.do("GET", "/api/v1/users/alice/quota", admin, nil)
	assert.EqualValues(t, map[string]any{"limit": 2.0, "used": 2.0}, q.json(t)["running"])

	// A launch over the running limit is refused before it creates anything.
	carl := e.token("carl", "user")
	own := a.do("POST", "/api/v1/workspaces", carl, map[string]any{"name": "carl--a"})
	require.Equal(t, http.StatusCreated, own.Status, "%s", own.Body)
	require.Equal(t, http.StatusAccepted, a.do("POST", wsPath(own.str(t, "id"), "/start"), carl, nil).Status)
	expectProblem(t, a.do("POST", "/api/v1/workspaces/launch", carl, nil), http.StatusConflict, "quota_running_exceeded")
	q = a.do("GET", "/api/v1/users/carl/quota", carl, nil)
	assert.EqualValues(t, map[string]any{"limit": 2.0, "used": 1.0}, q.json(t)["workspaces"], "the refused launch made no workspace")

	// Parallel creates cannot pass the limit together.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := a.do("POST", "/api/v1/workspaces", bob, map[string]any{"name": "bob--" + string(rune('a'+i))})
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusCreated: 2, http.StatusConflict: 6}, codes)
}
