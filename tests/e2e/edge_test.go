package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
)

// edge sends requests to Traefik as a browser would to a given host (the
// test resolves every name to Traefik's address).
type edge struct {
	t    *testing.T
	s    *stack
	port string
}

type answer struct {
	status int
	body   string
	header http.Header
}

func (a answer) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: a.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// at sends method host path through Traefik; headers are name, value pairs.
func (e edge) at(method, host, path string, body any, headers ...string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+e.s.web+path, rd)
	require.NoError(e.t, err)
	req.Host = host
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	res, err := quick.Do(req)
	if err != nil {
		return answer{} // Traefik not listening yet: status 0
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, string(b), res.Header}
}

// follow sends a GET to an absolute URL a redirect named, through Traefik.
func (e edge) follow(location string, headers ...string) answer {
	e.t.Helper()
	u, err := url.Parse(location)
	require.NoError(e.t, err)
	return e.at("GET", u.Host, u.RequestURI(), nil, headers...)
}

// TestEdgeSubdomainMode is issue 23's edge in subdomain mode, on the real
// stack behind a real Traefik: the control plane answers only on the
// public host, the session cookie never reaches a workspace's host, a
// workspace host gets its own access cookie through the redirect
// handshake, and cookies a workspace could set change no one.
func TestEdgeSubdomainMode(t *testing.T) {
	s := newStack(t, "BERTH_ROUTING_MODE=subdomain", "BERTH_DOMAIN=berth.test", "BERTH_PUBLIC_URL=http://berth.test:{port}")
	_, port, _ := net.SplitHostPort(s.web)
	e := edge{t: t, s: s, port: port}
	public, aliceHost, bobHost := "berth.test:"+port, "alice.berth.test:"+port, "bob.berth.test:"+port
	admin, alice, bob := s.token("root", "admin"), s.token("alice", "user"), s.token("bob", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	aliceWS := s.launch(alice)
	s.launch(bob)
	assert.Equal(t, "http://"+aliceHost+"/", aliceWS.URL)
	for _, host := range []string{aliceHost, bobHost} {
		until(t, 30*time.Second, host+" routed", func() bool {
			return e.at("GET", host, "/", nil, "Authorization", "Bearer "+map[string]string{aliceHost: alice, bobHost: bob}[host]).status == 200
		})
	}

	// Sessions as the dashboard makes them: on the public host, host-only.
	session := func(token string) string {
		var a answer
		until(t, 10*time.Second, "the API on the public host", func() bool {
			a = e.at("POST", public, "/api/v1/auth/session", nil, "Authorization", "Bearer "+token)
			return a.status != 404
		})
		require.Equal(t, 201, a.status, a.body)
		c := a.cookie("berth_session")
		require.NotNil(t, c, "no session cookie")
		assert.Empty(t, c.Domain, "the session cookie is host-only: no workspace host receives it")
		assert.True(t, c.HttpOnly)
		return c.Value
	}
	adminSession, aliceSession := session(admin), session(alice)
	adminCookie := "berth_session=" + adminSession

	images := func() string {
		_, b, _ := call(t, "GET", "http://"+s.api+"/api/v1/images", admin, nil)
		return string(b)
	}

	t.Run("a workspace page cannot call the API as its visitor", func(t *testing.T) {
		// What a script served by alice's workspace sends from its own
		// origin, with the visiting admin's cookie: Traefik routes /api/ of
		// alice's host to alice's workspace (through forwardAuth), not to
		// the API.
		a := e.at("POST", aliceHost, "/api/v1/images", map[string]any{"ref": "evil/image:1"}, "Cookie", adminCookie, "Sec-Fetch-Site", "same-origin")
		assert.Equal(t, 401, a.status, "%s", a.body)
		a = e.at("POST", aliceHost, "/api/v1/systems", map[string]any{"name": "evil", "types": []string{"berth.intake.workspace.start"}, "owners": []string{"alice"}},
			"Cookie", adminCookie, "Origin", "http://"+aliceHost)
		assert.Equal(t, 401, a.status, "%s", a.body)
		assert.NotContains(t, a.body, "password")
		a = e.at("GET", aliceHost, "/api/v1/me", nil, "Cookie", adminCookie)
		assert.NotContains(t, a.body, `"sub":"root"`)
		assert.NotContains(t, images(), "evil/image")

		// The API holds on its own, whatever a router sends it.
		status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", "", map[string]any{"ref": "evil/image:2"},
			"Host", aliceHost, "Cookie", adminCookie, "Origin", "http://"+aliceHost)
		assert.Equal(t, 403, status, "%s", b)
		assert.Contains(t, string(b), "wrong_host")
		// Origin must be the configured public origin, not the Host sent.
		status, b, _ = call(t, "POST", "http://"+s.api+"/api/v1/images", "", map[string]any{"ref": "evil/image:3"},
			"Host", public, "Cookie", adminCookie, "Origin", "http://"+aliceHost)
		assert.Equal(t, 403, status, "%s", b)
		assert.NotContains(t, images(), "evil/image")
		// The public host's own pages still work with the cookie.
		a = e.at("POST", public, "/api/v1/images", map[string]any{"ref": "berth/ok:1"}, "Cookie", adminCookie, "Origin", "http://"+public)
		assert.Equal(t, 201, a.status, "%s", a.body)
	})

	t.Run("the session cookie opens no workspace host", func(t *testing.T) {
		// Alice's own session cookie, as her workspace could set it for the
		// parent domain: her host does not take it.
		a := e.at("GET", aliceHost, "/", nil, "Cookie", "berth_session="+aliceSession)
		assert.Equal(t, 401, a.status)
		assert.NotContains(t, a.body, "Workspace alice")
	})

	var access string
	t.Run("the handshake gives a workspace host its own access", func(t *testing.T) {
		a := e.at("GET", aliceHost, "/files/notes.txt?x=1", nil, "Accept", "text/html", "Cookie", adminCookie)
		require.Equal(t, 302, a.status, a.body)
		start := a.header.Get("Location")
		require.True(t, strings.HasPrefix(start, "http://"+public+"/ui/workspace-auth?"), start)

		// Without a session the public host asks for a sign-in first.
		a = e.follow(start)
		require.Equal(t, 303, a.status)
		assert.Contains(t, a.header.Get("Location"), "/ui/signin?next=")
		// Bob may not open alice's workspace.
		a = e.follow(start, "Cookie", "berth_session="+session(bob))
		assert.Equal(t, 403, a.status)

		a = e.follow(start, "Cookie", adminCookie)
		require.Equal(t, 302, a.status, a.body)
		back := a.header.Get("Location")
		u, err := url.Parse(back)
		require.NoError(t, err)
		require.Equal(t, aliceHost, u.Host, back)
		require.Equal(t, "/.berth/auth", u.Path, back)
		require.NotEmpty(t, u.Query().Get("ticket"), back)
		assert.Nil(t, a.cookie("berth_ws"), "the public host sets no workspace cookie")

		// The ticket is for alice's host only.
		wrong := e.at("GET", bobHost, u.RequestURI(), nil)
		assert.Equal(t, 401, wrong.status)
		assert.Contains(t, wrong.body, "ticket_invalid")

		a = e.follow(back)
		require.Equal(t, 302, a.status, a.body)
		assert.Equal(t, "http://"+aliceHost+"/files/notes.txt?x=1", a.header.Get("Location"))
		c := a.cookie("berth_ws")
		require.NotNil(t, c)
		assert.Empty(t, c.Domain, "host-only: no other workspace host receives it")
		assert.True(t, c.HttpOnly)
		assert.NotEqual(t, adminSession, c.Value)
		access = c.Value

		again := e.follow(back)
		assert.Equal(t, 401, again.status, "a ticket is spent once")

		a = e.at("GET", aliceHost, "/", nil, "Cookie", "berth_ws="+access)
		assert.Equal(t, 200, a.status)
		assert.Contains(t, a.body, "Workspace alice")
		a = e.at("GET", aliceHost, "/headers", nil, "Cookie", "berth_ws="+access+"; pref=1", "Cookie", adminCookie)
		require.Equal(t, 200, a.status)
		assert.Contains(t, a.body, "pref=1")
		assert.NotContains(t, a.body, access, "the app never sees the access cookie")
		assert.NotContains(t, a.body, adminSession)

		// Alice's access does not open bob's host, even set for the parent
		// domain beside a cookie of bob's host's own.
		a = e.at("GET", bobHost, "/", nil, "Cookie", "berth_ws="+access)
		assert.Equal(t, 401, a.status)
	})

	t.Run("another workspace's page cannot use the visitor's access", func(t *testing.T) {
		require.NotEmpty(t, access)
		// A form or fetch on bob's page posting to alice's host: the
		// browser sends the admin's access cookie for alice's host
		// (same-site), and says the request came from another origin.
		a := e.at("POST", aliceHost, "/files", map[string]any{"name": "x"}, "Cookie", "berth_ws="+access,
			"Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "no-cors")
		assert.Equal(t, 403, a.status)
		assert.Contains(t, a.body, "cross_site_refused")
		a = e.at("GET", aliceHost, "/", nil, "Cookie", "berth_ws="+access, "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate")
		assert.Equal(t, 200, a.status, "a link from the dashboard opens it")
	})

	t.Run("a tossed session cookie changes no one", func(t *testing.T) {
		// Alice's workspace sets berth_session=<alice's session>;
		// Domain=berth.test: the browser sends both to the public host, in
		// either order. Neither is trusted, and the parent-domain one is
		// cleared.
		for _, pair := range [][2]string{{aliceSession, adminSession}, {adminSession, aliceSession}} {
			a := e.at("GET", public, "/api/v1/me", nil, "Cookie", "berth_session="+pair[0]+"; berth_session="+pair[1])
			assert.Equal(t, 401, a.status, a.body)
			assert.Contains(t, a.body, "session_ambiguous")
			assert.NotContains(t, a.body, `"sub":"alice"`)
			cleared := false
			for _, c := range (&http.Response{Header: a.header}).Cookies() {
				cleared = cleared || (c.Name == "berth_session" && c.Domain == "berth.test" && c.MaxAge < 0)
			}
			assert.True(t, cleared, "the parent-domain cookie is cleared: %v", a.header.Values("Set-Cookie"))
		}
		a := e.at("GET", public, "/api/v1/me", nil, "Cookie", adminCookie)
		require.Equal(t, 200, a.status)
		assert.Contains(t, a.body, `"sub":"root"`)
	})

	t.Run("logging out closes the workspace hosts", func(t *testing.T) {
		require.NotEmpty(t, access)
		a := e.at("DELETE", public, "/api/v1/auth/session", nil, "Cookie", adminCookie, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, 204, a.status, a.body)
		a = e.at("GET", aliceHost, "/", nil, "Cookie", "berth_ws="+access)
		assert.Equal(t, 401, a.status)
	})
}

// TestEdgeBareRoute: /workspace-<name> without its slash goes through
// forwardAuth like every other path. Traefik passes on what the slash
// redirect's regex does not match (an empty Host, HTTP/1.0 with none), so
// that router once reached the workspace unauthenticated.
func TestEdgeBareRoute(t *testing.T) {
	s := newStack(t)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	ws := s.launch(alice)
	until(t, 30*time.Second, "alice routed", func() bool { code, _ := get(t, ws.URL, alice); return code == 200 })
	bare := strings.TrimSuffix(ws.URL, "/")
	u, _ := url.Parse(bare)

	raw := func(request string) (int, string) {
		conn, err := net.DialTimeout("tcp", s.web, 2*time.Second)
		require.NoError(t, err)
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = io.WriteString(conn, request)
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err, "request %q", request)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	for name, request := range map[string]string{
		"empty Host":         "GET " + u.Path + "?x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
		"HTTP/1.0, no Host":  "GET " + u.Path + "?x HTTP/1.0\r\n\r\n",
		"POST with a body":   "POST " + u.Path + "?x HTTP/1.1\r\nHost: \r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
		"websocket upgrade":  "GET " + u.Path + "?x HTTP/1.1\r\nHost: \r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"HTTP/1.0, no query": "GET " + u.Path + " HTTP/1.0\r\n\r\n",
	} {
		code, body := raw(request)
		assert.Equal(t, 401, code, "%s: %s", name, body)
		assert.NotContains(t, body, "Workspace alice", name)
	}
	// Signed in, the bare path still redirects to the slash.
	code, _, h := call(t, "GET", bare, alice, nil)
	assert.Equal(t, 301, code)
	assert.Equal(t, ws.URL, h.Get("Location"))
}

// TestRateLimitByClientThroughTraefik: behind Traefik every anonymous
// visitor once shared Traefik's rate-limit bucket, so one client flooding
// the sign-in page made everyone's sign-in answer 429. Two clients on two
// loopback addresses: the flood of one leaves the other alone.
func TestRateLimitByClientThroughTraefik(t *testing.T) {
	s := newStack(t, "BERTH_API_RATE=0.5", "BERTH_API_BURST=3")
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
		return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	signIn := func(c *http.Client) int {
		res, err := c.Get("http://" + s.web + "/ui/signin")
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	flooder, other := from("127.0.0.2"), from("127.0.0.3")
	until(t, 15*time.Second, "the sign-in page through Traefik", func() bool { return signIn(from("127.0.0.4")) == 200 })
	limited := false
	for range 10 {
		limited = limited || signIn(flooder) == http.StatusTooManyRequests
	}
	require.True(t, limited, "the flooding client is limited")
	assert.Equal(t, 200, signIn(other), "another client is not")
	// X-Forwarded-For a client writes itself buys no fresh bucket.
	req, _ := http.NewRequest("GET", "http://"+s.web+"/ui/signin", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	res, err := flooder.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "a forged X-Forwarded-For is not believed")
}

// TestBadNameFromTheLogRoutesNothing: a workspace name that is not a DNS
// label, appended straight to the log with a privileged bus identity (a
// leaked ops credential), reaches neither Traefik's rules nor the engine:
// the fold of every service refuses it, and router-sync says so.
func TestBadNameFromTheLogRoutesNothing(t *testing.T) {
	s := newStack(t)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)

	nc := s.natsConn()
	defer nc.Close()
	ctx := context.Background()
	l, err := eventlog.Open(ctx, nc, eventlog.Options{})
	require.NoError(t, err)
	const bad = "a`) || PathPrefix(`/"
	id := uuid.NewString()
	meta := events.Meta{Source: "attacker", Actor: "user:root"}
	created, err := events.New(id, &events.Created{Name: bad, Owner: "alice", Image: "berth/workspace-demo:latest",
		Resources: events.Resources{MemoryBytes: 256 << 20, MilliCPUs: 500, Pids: 256}}, meta, time.Now())
	require.NoError(t, err)
	v, err := l.Append(ctx, created, 0)
	require.NoError(t, err)
	start, err := events.New(id, &events.StartRequested{}, meta, time.Now())
	require.NoError(t, err)
	_, err = l.Append(ctx, start, v)
	require.NoError(t, err)

	// A good workspace after it: once it is routed, router-sync has
	// followed the bad events too.
	ws := s.launch(alice)
	until(t, 30*time.Second, "alice routed", func() bool { code, _ := get(t, ws.URL, alice); return code == 200 })
	routes, err := os.ReadFile(filepath.Join(s.dynamic, "berth-workspaces.yml"))
	require.NoError(t, err)
	assert.NotContains(t, string(routes), "PathPrefix(`/`)")
	assert.NotContains(t, string(routes), id)
	// It had followed the bad events before it routed alice; stopped, its
	// log can be read without racing its writer.
	s.stop(s.procs["router-sync"])
	assert.Contains(t, s.procs["router-sync"].log.String(), "refused by the fold")
	list, err := s.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.id="+id))})
	require.NoError(t, err)
	assert.Empty(t, list, "no container for the bad name")
}
