package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// Berth's cookies. The session cookie is the platform session: set by the
// public host, for the public host only (subdomain mode) or the shared
// origin (path mode). The access cookie opens one workspace on its own
// host (subdomain mode), issued by the redirect handshake (handshake.go).
const (
	// SessionCookie carries a browser's session id (server-side sessions,
	// internal/sessions): the platform token never goes into a cookie.
	SessionCookie = "berth_session"
	// AccessCookie carries a workspace host's access (subdomain mode).
	AccessCookie = "berth_ws"
	// hostPrefix makes browsers refuse the cookie unless it is Secure,
	// host-only and for the whole site: a workspace on a sibling host can
	// then neither set nor shadow it (cookie tossing), as it can a plain
	// name with Domain=<parent>.
	hostPrefix = "__Host-"
)

// berthCookies are every name Berth reads: none of them reaches a
// workspace's app, whoever set them.
var berthCookies = []string{SessionCookie, hostPrefix + SessionCookie, AccessCookie, hostPrefix + AccessCookie}

// maxCookieValues bounds how many values of one cookie name are tried: a
// workspace may set more of them for the parent domain.
const maxCookieValues = 4

// cookieName is base with the __Host- prefix where browsers allow it: a
// Secure cookie with no Domain.
func (o Options) cookieName(base string) string {
	if o.CookieSecure && o.CookieDomain == "" {
		return hostPrefix + base
	}
	return base
}

// subdomainMode says workspaces are served on hosts of their own.
func (o Options) subdomainMode() bool { return o.WorkspaceDomain != "" }

// cookieValues returns the values sent under name, in the order sent.
func cookieValues(r *http.Request, name string) []string {
	var vs []string
	for _, ck := range r.CookiesNamed(name) {
		if ck.Value != "" {
			vs = append(vs, ck.Value)
		}
	}
	return vs
}

// sessionCookie is the value of Berth's session cookie, or "".
func (o Options) sessionCookie(r *http.Request) string {
	if vs := cookieValues(r, o.cookieName(SessionCookie)); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// tossedCookie reports a session cookie sent twice: a browser sends both
// when a workspace set one for the parent domain beside Berth's host-only
// one, and nothing says which is whose, so neither is trusted.
func (o Options) tossedCookie(r *http.Request) bool {
	return len(cookieValues(r, o.cookieName(SessionCookie))) > 1
}

// clearTossed expires a session cookie a workspace set for the parent
// domain (Berth's own is host-only, so this leaves it alone), and Berth's
// own too: the browser signs in again with one cookie.
func (o Options) clearTossed(w http.ResponseWriter) {
	if o.subdomainMode() && o.CookieDomain == "" {
		http.SetCookie(w, &http.Cookie{Name: o.cookieName(SessionCookie), Value: "", Path: "/", Domain: o.WorkspaceDomain, MaxAge: -1})
	}
	http.SetCookie(w, o.cookie("", -1))
}

// onPublicHost reports whether the request was addressed to Berth's
// public host (the Host header; Traefik passes it on unchanged).
func (o Options) onPublicHost(r *http.Request) bool {
	return sameHost(r.Host, o.PublicHost, o.CookieSecure)
}

// sameHost compares two host[:port] values as browsers do: case-blind, a
// default port the same as none.
func sameHost(a, b string, https bool) bool {
	return normHost(a, https) == normHost(b, https)
}

func normHost(h string, https bool) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		return h
	}
	if (https && port == "443") || (!https && port == "80") {
		return host
	}
	return h
}
