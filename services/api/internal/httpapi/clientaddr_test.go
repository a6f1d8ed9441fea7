package httpapi

import (
	"net"
	"net/http/httptest"
	"testing"

	"github.com/berthdev/berth/services/api/internal/devclients"
)

func TestClientIP(t *testing.T) {
	_, proxyNet, _ := net.ParseCIDR("172.17.0.1/32")
	trusted := devclients.Allowed{proxyNet}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy", "203.0.113.5:4000", nil, "203.0.113.5"},
		{"an untrusted peer's header is its own word", "203.0.113.5:4000", []string{"198.51.100.7"}, "203.0.113.5"},
		{"Traefik on loopback names the client", "127.0.0.1:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"the right-most untrusted hop, not what the client prepended", "127.0.0.1:4000", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"several headers read in order", "127.0.0.1:4000", []string{"1.2.3.4", "198.51.100.7"}, "198.51.100.7"},
		{"trusted hops are skipped", "172.17.0.1:4000", []string{"198.51.100.7, 127.0.0.1"}, "198.51.100.7"},
		{"a configured proxy", "172.17.0.1:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"a local client through Traefik", "127.0.0.1:4000", []string{"127.0.0.1"}, "127.0.0.1"},
		{"a malformed hop stops the walk", "127.0.0.1:4000", []string{"1.2.3.4, garbage"}, "127.0.0.1"},
		{"no header from the proxy", "127.0.0.1:4000", nil, "127.0.0.1"},
		{"IPv6", "[::1]:4000", []string{"2001:db8::1"}, "2001:db8::1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientIP(r, trusted); got != c.want {
			t.Errorf("%s: got %s want %s", c.name, got, c.want)
		}
	}
}
