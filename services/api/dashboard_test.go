package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// page sends a browser-like request; headers are name, value pairs.
func (a *api) page(method, path string, form url.Values, headers ...string) *http.Response {
	a.e.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, a.base+path, body)
	require.NoError(a.e.t, err)
	req.Host = publicHost
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		setHeader(req, headers[i], headers[i+1])
	}
	res, err := noRedirect.Do(req)
	require.NoError(a.e.t, err)
	a.e.t.Cleanup(noRedirect.CloseIdleConnections)
	a.e.t.Cleanup(func() { res.Body.Close() })
	return res
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	_, err := bufio.NewReader(res.Body).WriteTo(&b)
	require.NoError(t, err)
	return b.String()
}

// TestDashboardSignInAndLaunch: a person without a session is sent to sign
// in; the development sign-in (this machine only, same origin only) starts
// a session; the dashboard lists the user's workspaces with a Launch
// button, and a launch's progress streams from the log until it runs.
func TestDashboardSignInAndLaunch(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--dev-tokens")
	a.addImage(e.token("root", "admin"), "berth/workspace-demo:latest")

	res := a.page("GET", "/", nil)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/ui/signin?next=%2F", res.Header.Get("Location"))

	res = a.page("GET", "/ui/signin", nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, readAll(t, res), "Development sign-in")
	assert.Contains(t, res.Header.Get("Content-Security-Policy"), "script-src 'self'")

	form := url.Values{"sub": {"alice"}, "role": {"user"}, "next": {"//evil.example/"}}
	t.Run("not from another machine, through Traefik or not", func(t *testing.T) {
		res := a.page("GET", "/ui/signin", nil, "X-Forwarded-For", "203.0.113.9")
		assert.NotContains(t, readAll(t, res), "Development sign-in")
		res = a.page("POST", "/ui/signin/dev", form, "Sec-Fetch-Site", "same-origin", "X-Forwarded-For", "127.0.0.1, 203.0.113.9")
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
	})
	t.Run("not from another site's page", func(t *testing.T) {
		res := a.page("POST", "/ui/signin/dev", form, "Sec-Fetch-Site", "cross-site")
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		res = a.page("POST", "/ui/signin/dev", url.Values{"sub": {""}, "role": {"root"}}, "Sec-Fetch-Site", "same-origin")
		assert.Equal(t, http.StatusUnprocessableEntity, res.StatusCode)
	})
	t.Run("an auditor in path mode is told why, not looped", func(t *testing.T) {
		res := a.page("POST", "/ui/signin/dev", url.Values{"sub": {"audrey"}, "role": {"auditor"}}, "Sec-Fetch-Site", "same-origin")
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Contains(t, readAll(t, res), "berthctl audit")
	})

	res = a.page("POST", "/ui/signin/dev", form, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	assert.Equal(t, "/", res.Header.Get("Location"), "next stays on this site")
	var cookie string
	for _, c := range res.Cookies() {
		if c.Name == "berth_session" {
			cookie = c.Value
		}
	}
	require.NotEmpty(t, cookie)
	withCookie := []string{"Cookie", "berth_session=" + cookie, "Sec-Fetch-Site", "same-origin"}

	res = a.page("GET", "/", nil, withCookie...)
	require.Equal(t, http.StatusOK, res.StatusCode)
	body := readAll(t, res)
	assert.Contains(t, body, "Launch workspace")
	assert.Contains(t, body, "You have no workspace yet")
	assert.Contains(t, body, "Signed in as <strong>alice</strong>")

	r := a.do("POST", "/api/v1/workspaces/launch", "", nil, withCookie...)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	id := r.str(t, "id")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/ui/workspaces/"+id+"/progress", nil)
	req.Header.Set("Cookie", "berth_session="+cookie)
	stream, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer stream.Body.Close()
	require.Equal(t, "text/event-stream", stream.Header.Get("Content-Type"))
	lines := bufio.NewScanner(stream.Body)
	next := func() map[string]any {
		for lines.Scan() {
			if data, ok := strings.CutPrefix(lines.Text(), "data: "); ok {
				var ws map[string]any
				require.NoError(t, json.Unmarshal([]byte(data), &ws))
				return ws
			}
		}
		t.Fatalf("the stream ended: %v", lines.Err())
		return nil
	}
	assert.Equal(t, "starting", next()["status"])
	e.provisionerSays(id, &events.Running{ContainerID: "c1", IP: "10.0.0.7", Port: 8080})
	ws := next()
	assert.Equal(t, "running", ws["status"], "the running event, as the provisioner appended it")
	assert.Equal(t, "http://berth.test:8000/workspace-alice/", ws["url"])
	for lines.Scan() { // the stream ends once the workspace runs
		assert.NotContains(t, lines.Text(), "data:", "nothing after running")
	}

	res = a.page("GET", "/", nil, withCookie...)
	body = readAll(t, res)
	assert.Contains(t, body, `href="http://berth.test:8000/workspace-alice/"`, "an Open link")
	res = a.page("GET", "/ui/workspaces/"+id+"/history", nil, withCookie...)
	body = readAll(t, res)
	assert.Contains(t, body, "start_requested")
	assert.Contains(t, body, "service:provisioner")

	// Bob sees neither alice's workspace nor its progress.
	bob := a.page("POST", "/ui/signin/dev", url.Values{"sub": {"bob"}, "role": {"user"}}, "Sec-Fetch-Site", "same-origin")
	bobCookie := bob.Cookies()[0].Value
	res = a.page("GET", "/ui/workspaces/"+id+"/progress", nil, "Cookie", "berth_session="+bobCookie)
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
	res = a.page("GET", "/ui/workspaces/"+id+"/history", nil, "Cookie", "berth_session="+bobCookie)
	assert.Equal(t, http.StatusNotFound, res.StatusCode)

	res = a.page("POST", "/ui/signout", nil, withCookie...)
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	res = a.page("GET", "/", nil, "Cookie", "berth_session="+cookie)
	assert.Equal(t, http.StatusSeeOther, res.StatusCode, "signed out: the old cookie opens nothing")
}

// TestDashboardForAdmins: in subdomain mode an admin's session keeps its
// rights, and the dashboard offers the catalog, every user's workspaces
// and a form to create one for a user with project folders from the
// projects root; in path mode it says why it does not.
func TestDashboardForAdmins(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--dev-tokens", "--routing-mode", "subdomain", "--public-url", "http://berth.test:8000")
	a.addImage(e.token("root", "admin"), "berth/workspace-demo:latest")
	res := a.page("POST", "/ui/signin/dev", url.Values{"sub": {"root"}, "role": {"admin"}}, "Sec-Fetch-Site", "same-origin")
	require.Equal(t, http.StatusSeeOther, res.StatusCode)
	cookie := res.Cookies()[0].Value
	withCookie := []string{"Cookie", "berth_session=" + cookie, "Sec-Fetch-Site", "same-origin"}

	r := a.do("POST", "/api/v1/workspaces", "", map[string]any{"name": "alice--cs101", "owner": "alice", "image": "berth/workspace-demo:latest",
		"projects": []string{"course-101"}, "description": "CS 101"}, withCookie...)
	require.Equal(t, http.StatusCreated, r.Status, "the dashboard's create form, as its script sends it: %s", r.Body)
	id := r.str(t, "id")
	r = a.do("PATCH", "/api/v1/workspaces/"+id+"/lifecycle", "", map[string]any{"hold": true, "hold_reason": "grading"}, withCookie...)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)

	body := readAll(t, a.page("GET", "/", nil, withCookie...))
	for _, want := range []string{"Create a workspace for a user", `<option value="course-101">`, `<option value="course-102/lab1">`,
		"Image catalog", "berth/workspace-demo:latest", "alice--cs101", "on hold: grading", `data-action="release"`, `data-action="idle"`} {
		assert.Contains(t, body, want)
	}
	assert.NotContains(t, body, `<option value="notes.txt">`, "files are not project folders")
}

// TestProgressStreamsPerUser: one user holds at most --max-streams
// progress streams open (each is a connection and a goroutine for minutes);
// the next gets 429 too_many_streams, another user is not affected, and a
// closed stream frees its slot.
func TestProgressStreamsPerUser(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI("--max-streams", "2")
	a.addImage(e.token("root", "admin"), demoImage)
	alice, bob := e.token("alice", "user"), e.token("bob", "user")
	aliceWS := a.do("POST", "/api/v1/workspaces/launch", alice, nil).str(t, "id")
	bobWS := a.do("POST", "/api/v1/workspaces/launch", bob, nil).str(t, "id")
	open := func(token, id string) (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/ui/workspaces/"+id+"/progress", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { cancel(); res.Body.Close() })
		return res, cancel
	}
	first, closeFirst := open(alice, aliceWS)
	require.Equal(t, http.StatusOK, first.StatusCode)
	second, _ := open(alice, aliceWS)
	require.Equal(t, http.StatusOK, second.StatusCode)
	third, _ := open(alice, aliceWS)
	require.Equal(t, http.StatusTooManyRequests, third.StatusCode)
	body := readAll(t, third)
	assert.Contains(t, body, "too_many_streams")
	other, _ := open(bob, bobWS)
	assert.Equal(t, http.StatusOK, other.StatusCode, "bob has slots of his own")

	closeFirst()
	require.Eventually(t, func() bool {
		res, cancel := open(alice, aliceWS)
		defer cancel()
		return res.StatusCode == http.StatusOK
	}, 5*time.Second, 50*time.Millisecond, "a closed stream frees its slot")
}
