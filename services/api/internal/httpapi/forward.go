package httpapi

import (
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
)

// SessionCookie carries the platform token for browsers opening workspaces.
const SessionCookie = "berth_session"

// Activity receives the "someone used this workspace" signal.
type Activity interface {
	Touch(workspaceID string, now time.Time)
}

// forward is Traefik's forwardAuth endpoint. The workspace comes from the
// route's own address (router-sync puts it there), identity from the
// session cookie or a bearer token; nothing else the client sends counts.
// On success it hands back the request's cookies without Berth's own, and
// no Authorization, so the workspace never sees the platform token.
func (h *handlers) forward(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	raw, fromHeader := bearer(c.Request())
	if !fromHeader {
		if ck, err := c.Cookie(SessionCookie); err == nil {
			raw = ck.Value
		}
	}
	p, err := h.o.Verifier.Verify(raw)
	switch {
	case err != nil:
		return h.signIn(c, err)
	case !p.User:
		return problem(http.StatusForbidden, app.CodeForbidden, "the token carries neither the user nor the admin role")
	}
	id := c.QueryParam("workspace")
	ws, err := w.Authorize(c.Request().Context(), app.Caller{Subject: p.Subject, Admin: p.Admin}, id)
	if err != nil {
		return err
	}
	if h.o.Activity != nil {
		h.o.Activity.Touch(ws.ID, h.o.Now())
	}
	if rest := withoutCookie(c.Request().Cookies(), SessionCookie); rest != "" {
		c.Response().Header().Set("Cookie", rest)
	}
	return c.NoContent(http.StatusOK)
}

func withoutCookie(cookies []*http.Cookie, name string) string {
	var parts []string
	for _, ck := range cookies {
		if ck.Name != name {
			parts = append(parts, ck.Name+"="+ck.Value)
		}
	}
	return strings.Join(parts, "; ")
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in · Berth</title></head>
<body><h1>Sign in to open this workspace</h1>
<p>{{.Reason}}</p>
<p><a href="{{.Login}}">Sign in</a></p></body></html>
`))

// signIn answers 401: browsers get a page with a sign-in link, API
// clients a problem document.
func (h *handlers) signIn(c echo.Context, err error) error {
	code, reason := codeUnauthenticated, "You are not signed in."
	if errors.Is(err, auth.ErrExpired) {
		code, reason = codeTokenExpired, "Your session has expired."
	} else if err != nil && !errors.Is(err, auth.ErrMissing) {
		code, reason = codeInvalidToken, "Your session is not valid."
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/html") {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
		c.Response().WriteHeader(http.StatusUnauthorized)
		return signInPage.Execute(c.Response(), map[string]string{"Reason": reason, "Login": h.o.LoginURL})
	}
	return problem(http.StatusUnauthorized, code, reason+" Sign in at "+h.o.LoginURL)
}

// createSession turns a bearer token into the session cookie browsers send
// when they open workspaces.
func (h *handlers) createSession(c echo.Context) error {
	raw, _ := bearer(c.Request()) // verified by the route's middleware
	c.SetCookie(&http.Cookie{
		Name: SessionCookie, Value: raw, Path: "/", Domain: h.o.CookieDomain,
		HttpOnly: true, Secure: h.o.CookieSecure, SameSite: http.SameSiteLaxMode,
	})
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) deleteSession(c echo.Context) error {
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", Domain: h.o.CookieDomain, MaxAge: -1,
		HttpOnly: true, Secure: h.o.CookieSecure, SameSite: http.SameSiteLaxMode})
	return c.NoContent(http.StatusNoContent)
}
