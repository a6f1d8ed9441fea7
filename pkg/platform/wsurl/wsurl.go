// Package wsurl names where a workspace answers: its browser URL and, in
// path mode, the path prefix Traefik routes. The API (which returns URLs)
// and router-sync (which renders routes) must agree, so both use this.
package wsurl

import (
	"fmt"
	"net/url"
	"strings"
)

// Mode is how workspaces are addressed.
type Mode string

const (
	// ModePath serves every workspace under /workspace-<name>/ of one host.
	// Simple (one DNS name, one certificate) but workspaces share an origin,
	// so their cookies and local storage are visible to each other.
	ModePath Mode = "path"
	// ModeSubdomain serves each workspace at <name>.<domain>: a separate
	// browser origin per workspace, the safer choice.
	ModeSubdomain Mode = "subdomain"
)

// Scheme builds workspace URLs.
type Scheme struct {
	Mode Mode
	// Public is the base URL users reach Traefik at (http://localhost:8000).
	Public *url.URL
	// Domain is the parent domain in subdomain mode (default: Public's host).
	Domain string
}

// Parse validates the settings and returns a Scheme.
func Parse(mode, public, domain string) (Scheme, error) {
	u, err := url.Parse(public)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Scheme{}, fmt.Errorf("public url %q: want http(s)://host[:port]", public)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	s := Scheme{Mode: Mode(mode), Public: u, Domain: domain}
	switch s.Mode {
	case ModePath:
	case ModeSubdomain:
		if s.Domain == "" {
			s.Domain = u.Hostname()
		}
	default:
		return Scheme{}, fmt.Errorf("routing mode %q: want path or subdomain", mode)
	}
	return s, nil
}

// PathPrefix is the path a workspace is served under in path mode.
func PathPrefix(name string) string { return "/workspace-" + name }

// Host is the host name of a workspace in subdomain mode.
func (s Scheme) Host(name string) string { return name + "." + s.Domain }

// URL is the browser URL of the workspace called name.
func (s Scheme) URL(name string) string {
	u := *s.Public
	if s.Mode == ModeSubdomain {
		u.Host = s.Host(name)
		if p := s.Public.Port(); p != "" {
			u.Host += ":" + p
		}
		u.Path += "/"
		return u.String()
	}
	u.Path += PathPrefix(name) + "/"
	return u.String()
}
