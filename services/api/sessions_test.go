package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sessionCookie starts a session with token and returns the cookie value.
func (a *api) sessionCookie(token string) string {
	t := a.e.t
	t.Helper()
	r := a.do("POST", "/api/v1/auth/session", token, nil)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	res := http.Response{Header: r.Header}
	for _, c := range res.Cookies() {
		if c.Name == "berth_session" {
			return c.Value
		}
	}
	t.Fatalf("no session cookie in %v", r.Header)
	return ""
}

// withCookie sends a request authenticated by the session cookie only.
func (a *api) withCookie(method, path, cookie string, body any, headers ...string) resp {
	a.e.t.Helper()
	return a.do(method, path, "", body, append([]string{"Cookie", "berth_session=" + cookie}, headers...)...)
}

// TestSessions (issue: sessions a browser can use and end). Before, the
// cookie held the raw JWT without an expiry, logout with only the cookie
// answered 401, a copied cookie kept opening workspaces after logout, and
// the cookie did not authenticate the API.
func TestSessions(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice, bob := e.token("root", "admin"), e.token("alice", "user"), e.token("bob", "user")
	a.addImage(admin, demoImage)

	r := a.do("POST", "/api/v1/auth/session", alice, nil)
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	setCookie := r.Header.Get("Set-Cookie")
	assert.NotContains(t, setCookie, alice, "the cookie must not carry the token")
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Max-Age=28800", "Path=/"} {
		assert.Contains(t, setCookie, attr)
	}
	assert.Equal(t, "alice", r.str(t, "sub"))
	cookie := a.sessionCookie(alice)

	t.Run("only a token starts a session", func(t *testing.T) {
		// A session renewing itself would outlive BERTH_SESSION_TTL.
		r := a.withCookie("POST", "/api/v1/auth/session", cookie, nil, "Sec-Fetch-Site", "same-origin")
		expectProblem(t, r, http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("the cookie authenticates the API", func(t *testing.T) {
		r := a.withCookie("GET", "/api/v1/me", cookie, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Equal(t, "alice", r.str(t, "sub"))
	})
	t.Run("changes only from Berth's own origin", func(t *testing.T) {
		create := func(name string, headers ...string) resp {
			return a.withCookie("POST", "/api/v1/workspaces", cookie, map[string]any{"name": name}, headers...)
		}
		expectProblem(t, create("alice--x1"), http.StatusForbidden, "cross_origin_refused")
		expectProblem(t, create("alice--x2", "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "cross_origin_refused")
		expectProblem(t, create("alice--x3", "Sec-Fetch-Site", "same-site"), http.StatusForbidden, "cross_origin_refused")
		expectProblem(t, create("alice--x4", "Origin", "http://evil.test"), http.StatusForbidden, "cross_origin_refused")
		assert.Equal(t, http.StatusCreated, create("alice--ok1", "Sec-Fetch-Site", "same-origin").Status)
		assert.Equal(t, http.StatusCreated, create("alice--ok2", "Origin", "http://berth.test:8000").Status)
	})

	ws := a.do("POST", "/api/v1/workspaces", alice, map[string]any{"name": "alice--ide"})
	require.Equal(t, http.StatusCreated, ws.Status, "%s", ws.Body)
	forward := "/api/v1/auth/forward?workspace=" + ws.str(t, "id")

	t.Run("forwardAuth passes the app's own cookies and Authorization untouched", func(t *testing.T) {
		r := a.do("GET", forward, "", nil, "Cookie", `pref={"a":1}; berth_session=`+cookie+`; theme=dark`, "Authorization", "Basic aWRlOnNlY3JldA==")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Equal(t, `pref={"a":1}; theme=dark`, r.Header.Get("Cookie"))
		assert.Equal(t, "Basic aWRlOnNlY3JldA==", r.Header.Get("Authorization"), "the IDE's own Authorization must reach it")
		// Authenticated by Berth's bearer token: that token goes no further.
		r = a.do("GET", forward, alice, nil, "Cookie", "theme=dark")
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.Header.Get("Authorization"))
		assert.Equal(t, http.StatusForbidden, a.do("GET", forward, "", nil, "Cookie", "berth_session="+a.sessionCookie(bob)).Status)
		// Beside a session, a Berth token in Authorization still goes no further.
		r = a.do("GET", forward, "", nil, "Cookie", "berth_session="+cookie, "Authorization", "Bearer "+admin)
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.Header.Get("Authorization"))
	})

	t.Run("a browser signed in as someone else gets a page that says so", func(t *testing.T) {
		r := a.do("GET", forward, "", nil, "Cookie", "berth_session="+a.sessionCookie(bob), "Accept", "text/html,application/xhtml+xml")
		require.Equal(t, http.StatusForbidden, r.Status, "%s", r.Body)
		assert.Contains(t, r.Header.Get("Content-Type"), "text/html")
		page := string(r.Body)
		assert.Contains(t, page, "This workspace is not yours")
		assert.Contains(t, page, "You are signed in as bob: only the workspace&#39;s owner and admins may open it.")
		assert.NotContains(t, page, "alice", "the page names neither the owner nor the workspace")
		// API clients keep the problem document.
		expectProblem(t, a.do("GET", forward, "", nil, "Cookie", "berth_session="+a.sessionCookie(bob)), http.StatusForbidden, "forbidden")
	})

	t.Run("logout with the cookie alone; the old cookie opens nothing", func(t *testing.T) {
		copied := a.sessionCookie(alice)
		r := a.withCookie("DELETE", "/api/v1/auth/session", copied, nil, "Sec-Fetch-Site", "same-origin")
		require.Equal(t, http.StatusNoContent, r.Status, "%s", r.Body)
		assert.Contains(t, r.Header.Get("Set-Cookie"), "Max-Age=0")
		expectProblem(t, a.withCookie("GET", "/api/v1/me", copied, nil), http.StatusUnauthorized, "session_ended")
		r = a.do("GET", forward, "", nil, "Cookie", "berth_session="+copied)
		expectProblem(t, r, http.StatusUnauthorized, "session_ended")
		// A cross-site page cannot log the user out.
		expectProblem(t, a.withCookie("DELETE", "/api/v1/auth/session", cookie, nil, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "cross_origin_refused")
		assert.Equal(t, http.StatusOK, a.withCookie("GET", "/api/v1/me", cookie, nil).Status)
		// Nothing to end: still 204.
		assert.Equal(t, http.StatusNoContent, a.do("DELETE", "/api/v1/auth/session", "", nil).Status)
	})

	t.Run("an admin signs a user out everywhere", func(t *testing.T) {
		second := a.sessionCookie(alice)
		bobs := a.sessionCookie(bob)
		expectProblem(t, a.do("DELETE", "/api/v1/users/alice/sessions", bob, nil), http.StatusForbidden, "forbidden")
		r := a.do("DELETE", "/api/v1/users/alice/sessions", admin, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.GreaterOrEqual(t, r.json(t)["ended"], float64(2))
		for _, c := range []string{cookie, second} {
			expectProblem(t, a.withCookie("GET", "/api/v1/me", c, nil), http.StatusUnauthorized, "session_ended")
			assert.Equal(t, http.StatusUnauthorized, a.do("GET", forward, "", nil, "Cookie", "berth_session="+c).Status)
		}
		assert.Equal(t, http.StatusOK, a.withCookie("GET", "/api/v1/me", bobs, nil).Status, "bob's session is not touched")
	})

	t.Run("forged and malformed cookies", func(t *testing.T) {
		for _, c := range []string{alice, "x", strings.Repeat("a", 32) + "." + strings.Repeat("A", 43), "../../etc"} {
			expectProblem(t, a.withCookie("GET", "/api/v1/me", c, nil), http.StatusUnauthorized, "session_ended")
		}
	})

	t.Run("path mode: the cookie carries no admin rights on the API", func(t *testing.T) {
		c := a.sessionCookie(admin)
		r := a.withCookie("GET", "/api/v1/me", c, nil)
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, false, r.json(t)["admin"])
		expectProblem(t, a.withCookie("POST", "/api/v1/images", c, map[string]any{"ref": "x:1"}, "Sec-Fetch-Site", "same-origin"), http.StatusForbidden, "forbidden")
		assert.Equal(t, http.StatusOK, a.do("GET", forward, "", nil, "Cookie", "berth_session="+c).Status, "admins still open workspaces")
	})
}
