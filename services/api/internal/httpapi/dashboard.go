package httpapi

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
)

// The dashboard: server-rendered pages (html/template), a stylesheet and a
// small script, all embedded. Changes go through the JSON API with the
// session cookie, under the same rules as any other client.
//
//go:embed web
var webFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago":   ago,
	"clock": func(t time.Time) string { return t.Local().Format("2006-01-02 15:04") },
	"idle":  func(secs int64) string { return (time.Duration(secs) * time.Second).String() },
	"mib":   func(n int64) string { return fmt.Sprintf("%d MiB", n>>20) },
}).ParseFS(webFS, "web/*.html"))

// webRoutes registers the dashboard's pages.
func (h *handlers) webRoutes(e *echo.Echo, limited []echo.MiddlewareFunc) {
	page := append([]echo.MiddlewareFunc{identify(h.o)}, limited...)
	assets, _ := fs.Sub(webFS, "web/assets")
	e.GET("/", h.dashboard, page...)
	e.GET("/ui/assets/*", echo.WrapHandler(http.StripPrefix("/ui/assets/", http.FileServerFS(assets))))
	e.GET("/ui/signin", h.signInPage, limited...)
	e.POST("/ui/signin/dev", h.devSignIn, limited...)
	e.GET("/ui/signin/oidc", h.oidcStart, limited...)
	e.GET("/ui/oidc/callback", h.oidcCallback, limited...)
	e.POST("/ui/signout", h.signOut, limited...)
	e.GET("/ui/workspace-auth", h.workspaceAuth, page...)
	e.GET("/ui/workspaces/:id/progress", h.progress, append(page, requireUser)...)
	e.GET("/ui/workspaces/:id/history", h.historyPage, page...)
}

// render writes template name with security headers: no framing, no
// scripts but Berth's own.
func render(c echo.Context, status int, name string, data any) error {
	hdr := c.Response().Header()
	hdr.Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
	hdr.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(status)
	return pages.ExecuteTemplate(c.Response(), name, data)
}

// signedIn is the page's principal, or false (the page then sends the
// browser to sign in).
func signedIn(c echo.Context) (auth.Principal, bool) {
	p, ok := c.Get(principalKey).(auth.Principal)
	return p, ok && (p.User || p.Auditor)
}

func toSignIn(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/ui/signin?next="+url.QueryEscape(c.Request().URL.RequestURI()))
}

// dashboardData is what the dashboard shows.
type dashboardData struct {
	Subject string
	// LastUsed says when running workspaces were last used, by id.
	LastUsed    map[string]string
	Admin       bool // admin rights in this session
	AdminInName bool // the identity is an admin, but the cookie carries no admin rights (path mode)
	Auditor     bool
	Workspaces  []workspaceBody
	Images      []events.CatalogImage // the catalog (admins)
	Default     string                // the default image
	// Launchable are the images the user may launch besides the default
	// (one workspace each).
	Launchable []events.CatalogImage
	Projects   []string
	Error      string
}

func (h *handlers) dashboard(c echo.Context) error {
	p, ok := signedIn(c)
	if !ok {
		return toSignIn(c)
	}
	d := dashboardData{Subject: p.Subject, Admin: p.Admin, Auditor: p.Auditor}
	d.AdminInName, _ = c.Get(adminDroppedKey).(bool)
	w, err := h.o.Backend.get()
	if err != nil {
		d.Error = "Workspace feature not available: the event log cannot be reached. Please contact your administrator."
		return render(c, http.StatusServiceUnavailable, "dashboard.html", d)
	}
	if p.User {
		// Admins also see deleted workspaces, to restore them.
		for _, ws := range w.List(c.Request().Context(), caller(c), app.ListFilter{IncludeDeleted: p.Admin}) {
			d.Workspaces = append(d.Workspaces, h.view(ws))
		}
	}
	d.LastUsed = h.lastUsed(c.Request().Context(), d.Workspaces)
	imgs, def := w.Images()
	d.Default = def
	for _, img := range imgs {
		if img.Launchable && img.Ref != def {
			d.Launchable = append(d.Launchable, img)
		}
	}
	if p.Admin {
		d.Images = imgs
		if d.Projects, err = w.Projects(caller(c)); err != nil {
			d.Error = "The projects root cannot be read: " + err.Error()
		}
	}
	return render(c, http.StatusOK, "dashboard.html", d)
}

// lastUsed reads the last activity of the running workspaces listed (at
// most 200, within a second: the page must not wait on the bus).
func (h *handlers) lastUsed(ctx context.Context, wss []workspaceBody) map[string]string {
	out := map[string]string{}
	if h.o.Activity == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for _, ws := range wss {
		if ws.Status != string(events.StatusRunning) || len(out) >= 200 || ctx.Err() != nil {
			continue
		}
		if at, ok, err := h.o.Activity.LastSeen(ctx, ws.ID); err == nil && ok {
			out[ws.ID] = ago(at)
		}
	}
	return out
}

// signInData is the sign-in page's.
type signInData struct {
	Next     string
	Dev      bool // the development sign-in is offered (dev tokens on, this machine)
	OIDC     bool // sign-in with the identity provider is set up
	OIDCName string
	Reason   string
}

func (h *handlers) signInPage(c echo.Context) error {
	d := signInData{Next: localPath(c.QueryParam("next")), Dev: h.devSignInAllowed(c), OIDC: h.o.OIDC != nil, OIDCName: h.o.OIDCName,
		Reason: signInReasons[c.QueryParam("reason")]} // a code: the page shows only Berth's own words
	return render(c, http.StatusOK, "signin.html", d)
}

// devSignInAllowed: only with development tokens on, and only for clients
// on this machine: the TCP peer, as for POST /api/v1/dev/token, and, since
// the page is reached through Traefik (whose own address is on this
// machine), every address in the X-Forwarded-For Traefik sets. A client
// talking to the API directly could write that header, but it then is on
// this machine already.
func (h *handlers) devSignInAllowed(c echo.Context) bool {
	r := c.Request()
	if h.o.DevIssuer == nil || !h.o.DevClients.Permits(r.RemoteAddr) {
		return false
	}
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, ip := range strings.Split(v, ",") {
			if !h.o.DevClients.Permits(net.JoinHostPort(strings.TrimSpace(ip), "0")) {
				return false
			}
		}
	}
	return true
}

// devSignIn is the development sign-in: a session for whoever the form
// names, with the roles it picks. As powerful as development tokens, and
// offered under the same rule.
func (h *handlers) devSignIn(c echo.Context) error {
	if !h.devSignInAllowed(c) {
		return problem(http.StatusForbidden, codeDevTokensLocal, "the development sign-in is offered only with development tokens on, to clients on this machine")
	}
	if err := sameOrigin(c.Request(), h.o); err != nil {
		return err
	}
	sub := strings.TrimSpace(c.FormValue("sub"))
	role := c.FormValue("role")
	if sub == "" || len(sub) > 128 || (role != "user" && role != "admin" && role != "auditor") {
		return render(c, http.StatusUnprocessableEntity, "signin.html", signInData{Next: localPath(c.FormValue("next")), Dev: true,
			OIDC: h.o.OIDC != nil, OIDCName: h.o.OIDCName, Reason: "Give a name (1 to 128 characters) and a role: user, admin or auditor."})
	}
	roles := []string{role}
	if role == "admin" {
		roles = []string{"user", "admin"}
	}
	tok, err := h.o.DevIssuer.Issue(sub, roles, h.o.Now(), time.Hour)
	if err != nil {
		return err
	}
	p, err := h.o.Verifier.Verify(tok)
	if err != nil {
		return fmt.Errorf("verify the development token: %w", err)
	}
	return h.startSession(c, p, localPath(c.FormValue("next")))
}

// startSession stores a session for p, sets its cookie and sends the
// browser on to next.
func (h *handlers) startSession(c echo.Context, p auth.Principal, next string) error {
	if !p.User && !h.o.SessionAdmin {
		// An auditor-only session would be refused at once: in path mode a
		// browser session carries no auditor rights.
		return render(c, http.StatusForbidden, "signin.html", signInData{Next: "/", Dev: h.devSignInAllowed(c), OIDC: h.o.OIDC != nil, OIDCName: h.o.OIDCName,
			Reason: "Auditors read the audit log with a token (berthctl audit, GET /api/v1/audit): in path mode a browser session carries no auditor rights."})
	}
	store, err := h.o.Backend.sessionStore()
	if err != nil {
		return err
	}
	cookie, sess, err := store.Create(c.Request().Context(), p)
	if err != nil {
		return problem(http.StatusServiceUnavailable, app.CodeUnavailable, "the session could not be stored; retry")
	}
	c.SetCookie(h.o.cookie(cookie, int(sess.Expires.Sub(sess.Created).Seconds())))
	return c.Redirect(http.StatusSeeOther, next)
}

func (h *handlers) signOut(c echo.Context) error {
	if err := h.endSession(c); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/ui/signin?reason=signed_out")
}

// signInReasons are the sign-in page's messages, by the code in ?reason=.
var signInReasons = map[string]string{"signed_out": "You are signed out."}

// localPath keeps a redirect on this site: a path, never //host or a
// URL. Browsers drop tabs and newlines from URLs and read \ as /, so
// "/\t/evil" or "/\\evil" would leave the site: any such byte refuses.
func localPath(next string) string {
	if len(next) > 1024 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "/"
	}
	return next
}

// progress streams a workspace's status as server-sent events until it is
// running (the page then opens it), failed, stopped, or a few minutes
// have passed: the log's events as they are folded.
func (h *handlers) progress(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws, err := w.Get(ctx, caller(c), c.Param("id"))
	if err != nil {
		return err
	}
	key := caller(c).Subject
	if !h.streams.take(key) {
		return problem(http.StatusTooManyRequests, codeTooManyStreams, fmt.Sprintf("at most %d progress streams may be open at once; close one", h.streams.max))
	}
	defer h.streams.release(key)
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "text/event-stream")
	res.Header().Set("Cache-Control", "no-store")
	res.Header().Set("X-Accel-Buffering", "no")
	res.WriteHeader(http.StatusOK)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		b, _ := json.Marshal(h.view(ws))
		if _, err := fmt.Fprintf(res, "event: status\ndata: %s\n\n", b); err != nil {
			return nil
		}
		res.Flush()
		if settled(ws) || time.Now().After(deadline) {
			return nil
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		next, err := w.AwaitChange(wctx, caller(c), ws.ID, ws.Version)
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, wctx.Err()) {
				fmt.Fprintf(res, "event: gone\ndata: {}\n\n")
			}
			return nil
		}
		ws = next
	}
}

// settled: nothing more will happen without another request.
func settled(ws events.Workspace) bool {
	switch ws.Status {
	case events.StatusRunning, events.StatusError, events.StatusDeleted:
		return true
	case events.StatusStopped, events.StatusCreated:
		return ws.Desired != events.DesiredRunning
	}
	return false
}

// historyLine is one event as the history page shows it.
type historyLine struct {
	Time   time.Time
	Actor  string
	Action string
	Reason string
}

func (h *handlers) historyPage(c echo.Context) error {
	p, ok := signedIn(c)
	if !ok {
		return toSignIn(c)
	}
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ws, err := w.Get(ctx, caller(c), c.Param("id"))
	if err != nil {
		return render(c, http.StatusNotFound, "error.html", map[string]string{"Title": "No such workspace", "Detail": "It does not exist, or it is not yours.", "Subject": p.Subject})
	}
	var lines []historyLine
	for after := uint64(0); len(lines) < 5000; {
		page, err := w.History(ctx, caller(c), ws.ID, after, app.MaxHistoryLimit)
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			lines = append(lines, historyLine{Time: e.Time, Actor: e.Actor, Action: action(e.Type), Reason: e.Reason})
		}
		if page.Next == 0 || page.Next <= after {
			break
		}
		after = page.Next
	}
	return render(c, http.StatusOK, "history.html", map[string]any{"Subject": p.Subject, "Workspace": h.view(ws), "Lines": lines})
}

// action is an event type's last word (start_requested, running).
func action(t events.Type) string {
	s := string(t)
	return s[strings.LastIndexByte(s, '.')+1:]
}

// ago says how long ago t was, for people.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
