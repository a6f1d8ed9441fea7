package httpapi

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
	"github.com/berthdev/berth/services/api/internal/sessions"
)

// The subdomain-mode handshake: the session cookie never leaves the public
// host, so a workspace host learns who its visitor is this way (the
// pattern Coder and JupyterHub use for apps on their own hosts):
//
//  1. A page load on <name>.<domain> with no access cookie: forwardAuth
//     sends the browser to the public host's /ui/workspace-auth.
//  2. There the session cookie is read (sign-in first if there is none),
//     the workspace authorised, and a one-time ticket for that workspace
//     and host issued: back to <name>.<domain>/.berth/auth?ticket=….
//  3. forwardAuth answers that path itself (the app never sees it): it
//     spends the ticket and sets the host's own access cookie, host-only,
//     then sends the browser on to the page it asked for.
//
// The access cookie opens only that workspace on that host, and only while
// the session it came from lives.

// handshakePath is reserved on every workspace host for step 3.
const handshakePath = "/.berth/auth"

// forwardedPath is the path of the request Traefik asks about.
func forwardedPath(r *http.Request) string {
	path, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Uri"), "?")
	return path
}

// forwardedMethod is the method of the request Traefik asks about.
func forwardedMethod(r *http.Request) string {
	return cmp.Or(r.Header.Get("X-Forwarded-Method"), r.Method)
}

// forwardedHost is the host the browser addressed (Traefik sets it from
// the request, replacing whatever the client sent: trustForwardHeader is
// off in the rendered middleware).
func (o Options) forwardedHost(r *http.Request) string {
	return normHost(r.Header.Get("X-Forwarded-Host"), o.CookieSecure)
}

// scheme is the public URL's scheme, which workspace hosts share.
func (o Options) scheme() string {
	if o.CookieSecure {
		return "https"
	}
	return "http"
}

// publicOrigin is scheme://host of the public host.
func (o Options) publicOrigin() string { return o.scheme() + "://" + o.PublicHost }

// crossSite refuses, on a workspace host, what a page of another site
// sent, but for a top-level page load: in subdomain mode every workspace
// is same-site with every other, so SameSite does not keep a page of
// alice's workspace from posting to bob's, or opening a websocket to it,
// with the access cookie of an admin who visits both. Browsers say where a
// request comes from in Sec-Fetch-Site; a client that sends none is no
// browser and holds no browser's cookies.
func crossSite(r *http.Request) error {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "same-site" && site != "cross-site" {
		return nil
	}
	if m := forwardedMethod(r); r.Header.Get("Sec-Fetch-Mode") == "navigate" && (m == http.MethodGet || m == http.MethodHead) {
		return nil
	}
	return problem(http.StatusForbidden, codeCrossSite, "a page of another site (another workspace, perhaps) may only link to this workspace, not send it requests")
}

// hostPrincipal finds who opens a workspace on its own host: the host's
// access cookie (every value sent, up to maxCookieValues: a workspace may
// set more under that name for the parent domain; each must have been
// issued for this workspace and host), else a Berth bearer token. The
// session cookie is never read here: a workspace can set one for the
// parent domain.
func (h *handlers) hostPrincipal(c echo.Context, workspaceID string) (auth.Principal, bool, error) {
	r := c.Request()
	vs := cookieValues(r, h.o.cookieName(AccessCookie))
	var cookieErr error
	if len(vs) > 0 {
		store, err := h.o.Backend.sessionStore()
		if err != nil {
			return auth.Principal{}, false, err
		}
		host := h.o.forwardedHost(r)
		for _, v := range vs[:min(len(vs), maxCookieValues)] {
			sess, err := store.Access(r.Context(), v, workspaceID, host)
			switch {
			case err == nil:
				return sess.Principal(), false, nil
			case errors.Is(err, sessions.ErrNoSession):
				cookieErr = errSessionEnded
			default:
				return auth.Principal{}, false, problem(http.StatusServiceUnavailable, app.CodeUnavailable, "sessions cannot be read right now; retry")
			}
		}
	}
	return h.bearerPrincipal(c, cookieErr)
}

// handshakeStart is step 1's destination for a request to workspaceID.
func (h *handlers) handshakeStart(workspaceID string, r *http.Request) string {
	q := url.Values{"workspace": {workspaceID}, "next": {localPath(r.Header.Get("X-Forwarded-Uri"))}}
	return h.o.publicOrigin() + "/ui/workspace-auth?" + q.Encode()
}

// workspaceAuth is step 2, on the public host.
func (h *handlers) workspaceAuth(c echo.Context) error {
	if !h.o.subdomainMode() {
		return problem(http.StatusNotFound, codeRouteNotFound, "workspace sign-in is for subdomain mode; open the workspace's URL")
	}
	p, ok := signedIn(c)
	cookie := h.o.sessionCookie(c.Request())
	if !ok || cookie == "" || !p.User {
		return toSignIn(c)
	}
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	ws, err := w.Authorize(c.Request().Context(), caller(c), c.QueryParam("workspace"))
	if err != nil {
		return err
	}
	u, err := url.Parse(h.o.URLFor(ws.Name))
	if err != nil {
		return err
	}
	store, err := h.o.Backend.sessionStore()
	if err != nil {
		return err
	}
	ticket, err := store.Ticket(c.Request().Context(), cookie, ws.ID, normHost(u.Host, u.Scheme == "https"))
	switch {
	case errors.Is(err, sessions.ErrNoSession):
		return toSignIn(c)
	case err != nil:
		return problem(http.StatusServiceUnavailable, app.CodeUnavailable, "the workspace sign-in could not be stored; retry")
	}
	q := url.Values{"ticket": {ticket}, "next": {localPath(c.QueryParam("next"))}}
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, u.Scheme+"://"+u.Host+handshakePath+"?"+q.Encode())
}

// redeem is step 3, answered by forwardAuth on the workspace host.
func (h *handlers) redeem(c echo.Context, workspaceID string) error {
	r := c.Request()
	_, raw, _ := strings.Cut(r.Header.Get("X-Forwarded-Uri"), "?")
	q, _ := url.ParseQuery(raw)
	store, err := h.o.Backend.sessionStore()
	if err != nil {
		return err
	}
	access, sess, err := store.Redeem(r.Context(), q.Get("ticket"), workspaceID, h.o.forwardedHost(r))
	switch {
	case errors.Is(err, sessions.ErrNoSession):
		return problem(http.StatusUnauthorized, codeTicketInvalid, "this workspace sign-in link has expired or was used already; open the workspace again")
	case err != nil:
		return problem(http.StatusServiceUnavailable, app.CodeUnavailable, "the workspace sign-in could not be stored; retry")
	}
	c.SetCookie(&http.Cookie{Name: h.o.cookieName(AccessCookie), Value: access, Path: "/", MaxAge: int(sess.Expires.Sub(h.o.Now()).Seconds()),
		HttpOnly: true, Secure: h.o.CookieSecure, SameSite: http.SameSiteLaxMode})
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	c.Response().Header().Set("Cache-Control", "no-store")
	// Absolute: Traefik resolves a relative Location against the API's
	// address, not the workspace's.
	return c.Redirect(http.StatusFound, h.o.scheme()+"://"+h.o.forwardedHost(r)+localPath(q.Get("next")))
}
