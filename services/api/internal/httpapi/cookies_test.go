package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestSameHost(t *testing.T) {
	cases := []struct {
		a, b  string
		https bool
		want  bool
	}{
		{"berth.test:8000", "berth.test:8000", false, true},
		{"Berth.Test:8000", "berth.test:8000", false, true},
		{"berth.test:80", "berth.test", false, true},
		{"berth.test:443", "berth.test", true, true},
		{"berth.test:443", "berth.test", false, false},
		{"alice.berth.test:8000", "berth.test:8000", false, false},
		{"berth.test:8001", "berth.test:8000", false, false},
		{"berth.test.", "berth.test", false, true},
		{"", "berth.test", false, false},
	}
	for _, c := range cases {
		if got := sameHost(c.a, c.b, c.https); got != c.want {
			t.Errorf("sameHost(%q, %q, https=%v) = %v", c.a, c.b, c.https, got)
		}
	}
}

// TestCrossSite: on a workspace host only a page load by GET may come from
// another site (a link on the dashboard, another workspace); everything
// else another site's page sends is refused.
func TestCrossSite(t *testing.T) {
	cases := []struct {
		site, mode, method string
		ok                 bool
	}{
		{"", "", "POST", true}, // no browser
		{"same-origin", "cors", "POST", true},
		{"none", "navigate", "GET", true},
		{"same-site", "navigate", "GET", true},
		{"cross-site", "navigate", "HEAD", true},
		{"same-site", "navigate", "POST", false}, // a form posted by another workspace
		{"same-site", "no-cors", "POST", false},
		{"same-site", "cors", "GET", false},
		{"cross-site", "websocket", "GET", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/api/v1/auth/forward", nil)
		r.Header.Set("X-Forwarded-Method", c.method)
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
			r.Header.Set("Sec-Fetch-Mode", c.mode)
		}
		if err := crossSite(r); (err == nil) != c.ok {
			t.Errorf("%s %s %s: error %v", c.site, c.mode, c.method, err)
		}
	}
}

// TestWithoutCookies: every Berth cookie goes, everything else stays byte
// for byte.
func TestWithoutCookies(t *testing.T) {
	got := withoutCookies([]string{`pref={"a":1}; berth_session=s1; __Host-berth_ws=w; theme=dark`, `berth_ws=x;berth_session = y; x=1`}, berthCookies)
	if want := `pref={"a":1}; theme=dark; x=1`; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestCookieNames(t *testing.T) {
	if got := (Options{CookieSecure: true}).cookieName(SessionCookie); got != "__Host-berth_session" {
		t.Errorf("https: %s", got)
	}
	if got := (Options{}).cookieName(SessionCookie); got != "berth_session" {
		t.Errorf("http: %s", got)
	}
	if got := (Options{CookieSecure: true, CookieDomain: "example.com"}).cookieName(SessionCookie); got != "berth_session" {
		t.Errorf("a Domain cookie cannot carry __Host-: %s", got)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: "a"})
	r.AddCookie(&http.Cookie{Name: SessionCookie, Value: "b"})
	if !(Options{}).tossedCookie(r) {
		t.Error("two session cookies not seen")
	}
}
