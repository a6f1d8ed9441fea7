package httpapi

import (
	"net"
	"net/http"
	"strings"

	"github.com/berthdev/berth/services/api/internal/devclients"
)

// clientIP is the address a request came from, for rate limits: the TCP
// peer, or, when the peer is a trusted proxy (Traefik: loopback, plus
// BERTH_TRUSTED_PROXIES), the right-most X-Forwarded-For address that is
// not itself a trusted proxy. Addresses left of that one are the client's
// own word, never believed: a client sending a fresh X-Forwarded-For per
// request gets no fresh bucket. Behind Traefik every visitor would
// otherwise share Traefik's bucket, and one flood would 429 everyone.
func clientIP(r *http.Request, trusted devclients.Allowed) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if !trusted.Permits(r.RemoteAddr) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		ip := net.ParseIP(hops[i])
		if ip == nil {
			break // a malformed hop: trust nothing to its left
		}
		client = ip.String()
		if !trusted.Permits(net.JoinHostPort(client, "0")) {
			break
		}
	}
	return client
}
