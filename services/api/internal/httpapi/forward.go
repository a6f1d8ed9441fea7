package httpapi

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
	"github.com/berthdev/berth/services/api/internal/sessions"
)

// Activity receives the "someone used this workspace" signal.
type Activity interface {
	Touch(workspaceID string, now time.Time)
	// LastSeen is the last activity recorded for the workspace.
	LastSeen(ctx context.Context, workspaceID string) (time.Time, bool, error)
}

// errSessionEnded: the cookie names no live session (logged out, signed
// out by an admin, expired).
var errSessionEnded = errors.New("session ended")

// forward is Traefik's forwardAuth endpoint. The workspace comes from the
// route's own address (router-sync puts it there), identity from the
// browser's cookie or, without one, a Berth bearer token (scripts). The
// cookie is the session cookie in path mode (one origin for all) and the
// workspace host's own access cookie in subdomain mode (handshake.go). On
// success it hands back what the workspace's own app should get (Traefik
// replaces both headers with these): the Cookie header as sent, byte for
// byte, minus every Berth cookie, and Authorization untouched unless it
// carried the Berth token that got the request in (an IDE's own
// Authorization must reach the IDE; the platform token never does).
func (h *handlers) forward(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	id := c.QueryParam("workspace")
	var p auth.Principal
	var viaBearer bool
	if h.o.subdomainMode() {
		if err := crossSite(c.Request()); err != nil {
			return err
		}
		if forwardedPath(c.Request()) == handshakePath {
			return h.redeem(c, id)
		}
		p, viaBearer, err = h.hostPrincipal(c, id)
	} else {
		p, viaBearer, err = h.forwardPrincipal(c)
	}
	switch {
	case err != nil:
		var prob *Problem
		if errors.As(err, &prob) {
			return err
		}
		return h.signIn(c, id, err)
	case !p.User:
		return problem(http.StatusForbidden, app.CodeForbidden, "the token carries neither the user nor the admin role")
	}
	ws, err := w.Authorize(c.Request().Context(), app.Caller{Subject: p.Subject, Admin: p.Admin}, id)
	if err != nil {
		var ae *app.Error
		if errors.As(err, &ae) && ae.Kind == app.KindForbidden && strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/html") {
			return h.notYours(c, p.Subject, ae.Message)
		}
		return err
	}
	if h.o.Activity != nil {
		h.o.Activity.Touch(ws.ID, h.o.Now())
	}
	if rest := withoutCookies(c.Request().Header.Values("Cookie"), berthCookies); rest != "" {
		c.Response().Header().Set("Cookie", rest)
	}
	if a := c.Request().Header.Get(echo.HeaderAuthorization); a != "" && !viaBearer && !h.berthToken(c.Request()) {
		c.Response().Header().Set(echo.HeaderAuthorization, a)
	}
	return c.NoContent(http.StatusOK)
}

// forwardPrincipal finds who opens a workspace in path mode: a live
// session first, then a bearer token that Berth verifies. viaBearer says
// the token was used.
func (h *handlers) forwardPrincipal(c echo.Context) (p auth.Principal, viaBearer bool, err error) {
	var sessErr error
	if cookie := h.o.sessionCookie(c.Request()); cookie != "" {
		if h.o.tossedCookie(c.Request()) {
			return p, false, problem(http.StatusUnauthorized, codeSessionAmbiguous, "the browser sent two session cookies; sign in again on Berth's dashboard")
		}
		store, err := h.o.Backend.sessionStore()
		if err != nil {
			return p, false, err
		}
		sess, err := store.Lookup(c.Request().Context(), cookie)
		switch {
		case err == nil:
			return sess.Principal(), false, nil
		case errors.Is(err, sessions.ErrNoSession):
			sessErr = errSessionEnded
		default:
			return p, false, problem(http.StatusServiceUnavailable, app.CodeUnavailable, "sessions cannot be read right now; retry")
		}
	}
	return h.bearerPrincipal(c, sessErr)
}

// bearerPrincipal is the caller a Berth bearer token names; without one,
// cookieErr (why the cookie did not do) or auth.ErrMissing.
func (h *handlers) bearerPrincipal(c echo.Context, cookieErr error) (auth.Principal, bool, error) {
	raw, ok := bearer(c.Request())
	if !ok {
		return auth.Principal{}, false, cmp.Or(cookieErr, auth.ErrMissing)
	}
	p, err := h.o.Verifier.Verify(raw)
	if err != nil {
		// Not Berth's token (perhaps the workspace app's own): what
		// matters to the person is the cookie.
		return p, false, cmp.Or(cookieErr, err)
	}
	return p, true, nil
}

// berthToken reports whether the request's Authorization holds a token
// Berth accepts: that never goes on to a workspace, even beside a session.
func (h *handlers) berthToken(r *http.Request) bool {
	raw, ok := bearer(r)
	if !ok {
		return false
	}
	_, err := h.o.Verifier.Verify(raw)
	return err == nil || errors.Is(err, auth.ErrExpired)
}

// withoutCookies drops the cookies called one of names from Cookie header
// values and keeps every other cookie exactly as sent: re-serialising
// parsed cookies would drop the ones Go's parser refuses (pref={"a":1})
// that the workspace's app set.
func withoutCookies(headers []string, names []string) string {
	var parts []string
	for _, h := range headers {
		for _, part := range strings.Split(h, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if n, _, _ := strings.Cut(part, "="); slices.Contains(names, strings.TrimSpace(n)) {
				continue
			}
			parts = append(parts, part)
		}
	}
	return strings.Join(parts, "; ")
}

// signInURL is where a browser stopped at a workspace signs in: the
// dashboard's sign-in, sent back to the workspace after it (in path mode
// the workspace is on this site; in subdomain mode the dashboard is home),
// or BERTH_LOGIN_URL when it names another place.
func (h *handlers) signInURL(c echo.Context) string {
	login := strings.TrimSuffix(h.o.LoginURL, "/")
	u, err := url.Parse(login)
	if err != nil || u.Path != "" {
		return h.o.LoginURL // an operator's own sign-in page
	}
	next := "/" // subdomain mode: the workspace is on another host
	if h := c.Request().Header.Get("X-Forwarded-Host"); h == "" || h == u.Host {
		next = localPath(c.Request().Header.Get("X-Forwarded-Uri")) // the workspace path Traefik asked about
	}
	return login + "/ui/signin?next=" + url.QueryEscape(next)
}

// signIn answers a request without a usable identity: in subdomain mode a
// browser's page load goes through the handshake (to the public host and
// back, signing in on the way if need be); other browsers get a page with
// a sign-in link, API clients a problem document.
func (h *handlers) signIn(c echo.Context, workspaceID string, err error) error {
	code, reason := codeUnauthenticated, "You are not signed in."
	switch {
	case errors.Is(err, errSessionEnded):
		code, reason = codeSessionEnded, "Your session has ended."
	case errors.Is(err, auth.ErrExpired):
		code, reason = codeTokenExpired, "Your session has expired."
	case err != nil && !errors.Is(err, auth.ErrMissing):
		code, reason = codeInvalidToken, "Your session is not valid."
	}
	browser := strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/html")
	if browser && h.o.subdomainMode() && forwardedMethod(c.Request()) == http.MethodGet {
		return c.Redirect(http.StatusFound, h.handshakeStart(workspaceID, c.Request()))
	}
	if browser {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
		c.Response().WriteHeader(http.StatusUnauthorized)
		return pages.ExecuteTemplate(c.Response(), "workspace-notice.html", map[string]string{"Title": "Sign in",
			"Heading": "Sign in to open this workspace", "Reason": reason, "Link": h.signInURL(c), "LinkText": "Sign in"})
	}
	return problem(http.StatusUnauthorized, code, reason+" Sign in at "+h.o.LoginURL)
}

// notYours answers a browser signed in as someone who may not open the
// workspace: a page that says so and leads to their own dashboard (API
// clients get the problem document).
func (h *handlers) notYours(c echo.Context, subject, why string) error {
	dashboard := h.o.LoginURL
	if u, err := url.Parse(strings.TrimSuffix(dashboard, "/")); err == nil && u.Path == "" {
		dashboard = u.String() + "/"
	}
	c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	c.Response().WriteHeader(http.StatusForbidden)
	return pages.ExecuteTemplate(c.Response(), "workspace-notice.html", map[string]string{"Title": "Not your workspace",
		"Heading": "This workspace is not yours", "Reason": "You are signed in as " + subject + ": " + why + ".",
		"Link": dashboard, "LinkText": "Your workspaces"})
}

// sessionView is the answer to a new session.
type sessionView struct {
	Subject   string    `json:"sub"`
	Admin     bool      `json:"admin"`
	ExpiresAt time.Time `json:"expires_at"`
}

// createSession starts a server-side session for the bearer token's
// identity and sets its id as the cookie browsers send to the API (the
// dashboard) and to workspaces.
func (h *handlers) createSession(c echo.Context) error {
	// Only a token starts a session: a session renewing itself would
	// outlive BERTH_SESSION_TTL and keep roles the identity provider took
	// away.
	if _, ok := bearer(c.Request()); !ok {
		return problem(http.StatusUnauthorized, codeUnauthenticated, "send Authorization: Bearer <token> to start a session")
	}
	store, err := h.o.Backend.sessionStore()
	if err != nil {
		return err
	}
	p, _ := c.Get(principalKey).(auth.Principal)
	cookie, sess, err := store.Create(c.Request().Context(), p)
	if err != nil {
		return problem(http.StatusServiceUnavailable, app.CodeUnavailable, "the session could not be stored; retry")
	}
	c.SetCookie(h.o.cookie(cookie, int(sess.Expires.Sub(sess.Created).Seconds())))
	return c.JSON(http.StatusCreated, sessionView{Subject: sess.Subject, Admin: sess.Admin, ExpiresAt: sess.Expires})
}

// cookie is the session cookie: host-only unless the operator set
// BERTH_COOKIE_DOMAIN (path mode only), never readable by scripts.
func (o Options) cookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: o.cookieName(SessionCookie), Value: value, Path: "/", Domain: o.CookieDomain, MaxAge: maxAge,
		HttpOnly: true, Secure: o.CookieSecure, SameSite: http.SameSiteLaxMode}
}

// deleteSession ends the session the cookie names (logout needs nothing
// else) and clears the cookie; afterwards the old cookie opens nothing.
func (h *handlers) deleteSession(c echo.Context) error {
	if err := h.endSession(c); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// endSession ends the session the cookie names, if any, and clears the
// cookie.
func (h *handlers) endSession(c echo.Context) error {
	if cookie := h.o.sessionCookie(c.Request()); cookie != "" {
		if err := sameOrigin(c.Request(), h.o); err != nil {
			return err
		}
		store, err := h.o.Backend.sessionStore()
		if err != nil {
			return err
		}
		if err := store.End(c.Request().Context(), cookie); err != nil {
			return problem(http.StatusServiceUnavailable, app.CodeUnavailable, "the session could not be ended; retry")
		}
	}
	c.SetCookie(h.o.cookie("", -1))
	return nil
}

// endUserSessions signs a user out everywhere (admins).
func (h *handlers) endUserSessions(c echo.Context) error {
	store, err := h.o.Backend.sessionStore()
	if err != nil {
		return err
	}
	subject, err := subjectParam(c)
	if err != nil {
		return err
	}
	n, err := store.EndAll(c.Request().Context(), subject)
	if err != nil {
		return problem(http.StatusServiceUnavailable, app.CodeUnavailable, "sessions could not be ended; retry")
	}
	return c.JSON(http.StatusOK, map[string]any{"sub": subject, "ended": n})
}
