// Package render turns the running workspaces into Traefik's dynamic
// configuration. It is a pure function of its input: the same workspaces
// always give the same bytes, so a restart or a replay cannot change routes.
package render

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/wsurl"
)

// Backend says how Traefik reaches a workspace container.
type Backend string

const (
	// BackendIP dials the container's IP on the workspace network: Traefik
	// runs on the host (make run).
	BackendIP Backend = "ip"
	// BackendHost dials the container by name: Traefik sits on the
	// workspace network (compose).
	BackendHost Backend = "host"
)

// Options shape the rendered routes.
type Options struct {
	Mode       wsurl.Mode
	Domain     string // subdomain mode: <name>.<Domain>
	EntryPoint string // Traefik entry point name
	// AuthURL is the API's forwardAuth endpoint; the workspace id is added
	// as a query parameter, so identity is checked against the route's own
	// workspace, never one named by the client.
	AuthURL string
	Backend Backend
	// APIURL, when set, also routes /api/ and the dashboard (/ and /ui/)
	// to the API, so browsers reach the API and the workspaces on one
	// origin (the session cookie is shared).
	APIURL string
	// KeepPrefix says whether an image's app serves under its path prefix
	// itself (its catalog profile's prefix "keep"): path mode then routes
	// without stripping it. nil: every prefix is stripped.
	KeepPrefix func(image string) bool
	// PublicHost is the dashboard's host (no port): in subdomain mode the
	// dashboard's paths are routed on that host only, so / on a
	// workspace's host stays the workspace's.
	PublicHost string
}

// Routable reports whether a workspace should have a route: running
// workspaces with a known endpoint, and starting ones whose container has
// its address (addressed): Traefik loads the route while the IDE boots,
// instead of after its health check passed (63 ms p50 here).
func Routable(ws events.Workspace) bool {
	return (ws.Status == events.StatusRunning || ws.Status == events.StatusStarting) && ws.Endpoint != nil
}

// JSON is valid YAML, and encoding/json sorts map keys: the output is
// deterministic and Traefik's YAML file provider reads it as is.
type doc struct {
	HTTP httpConf `json:"http"`
}

type httpConf struct {
	Routers           map[string]router          `json:"routers,omitempty"`
	Middlewares       map[string]middleware      `json:"middlewares,omitempty"`
	Services          map[string]svc             `json:"services,omitempty"`
	ServersTransports map[string]serverTransport `json:"serversTransports,omitempty"`
}

// WorkspaceTransport is how Traefik dials workspace containers: a request
// that reaches a container which has just gone (its route not yet dropped)
// fails within a second instead of hanging on an address nobody answers
// (4-5 s until the kernel gives up, then 502).
const WorkspaceTransport = "berth-workspace"

// dialTimeout is that transport's connection timeout.
const dialTimeout = "1s"

type serverTransport struct {
	ForwardingTimeouts forwardingTimeouts `json:"forwardingTimeouts"`
}

type forwardingTimeouts struct {
	DialTimeout string `json:"dialTimeout"`
}

type router struct {
	Rule        string   `json:"rule"`
	EntryPoints []string `json:"entryPoints"`
	Middlewares []string `json:"middlewares"`
	Service     string   `json:"service"`
	Priority    int      `json:"priority,omitempty"`
}

type middleware struct {
	ForwardAuth   *forwardAuth   `json:"forwardAuth,omitempty"`
	StripPrefix   *stripPrefix   `json:"stripPrefix,omitempty"`
	RedirectRegex *redirectRegex `json:"redirectRegex,omitempty"`
}

type forwardAuth struct {
	Address             string   `json:"address"`
	TrustForwardHeader  bool     `json:"trustForwardHeader"`
	AuthResponseHeaders []string `json:"authResponseHeaders"`
	// MaxResponseBodySize bounds what Traefik reads of the API's answer
	// (a problem document or the sign-in page, a few KiB).
	MaxResponseBodySize int64 `json:"maxResponseBodySize"`
}

type stripPrefix struct {
	Prefixes []string `json:"prefixes"`
}

type redirectRegex struct {
	Regex       string `json:"regex"`
	Replacement string `json:"replacement"`
	Permanent   bool   `json:"permanent"`
}

type svc struct {
	LoadBalancer loadBalancer `json:"loadBalancer"`
}

type loadBalancer struct {
	Servers          []server `json:"servers"`
	ServersTransport string   `json:"serversTransport,omitempty"`
}

type server struct {
	URL string `json:"url"`
}

// placeholder names the service that keeps the document non-empty.
const placeholder = "berth-placeholder"

// entry is one named object of a section (a router, a middleware, a
// service), in the order it was rendered.
type entry[T any] struct {
	name string
	v    T
}

// ordered is a section in the order rendered.
type ordered[T any] []entry[T]

func (o ordered[T]) asMap() map[string]T {
	m := make(map[string]T, len(o))
	for _, e := range o {
		m[e.name] = e.v
	}
	return m
}

// sections are what Render collects before writing.
type sections struct {
	routers     ordered[router]
	middlewares ordered[middleware]
	services    ordered[svc]
}

// Render returns the dynamic configuration for wss (non-routable ones are
// skipped).
func Render(wss []events.Workspace, o Options) ([]byte, error) {
	wss = slices.Clone(wss)
	sort.Slice(wss, func(i, j int) bool { return wss[i].Name < wss[j].Name })
	auth, err := url.Parse(o.AuthURL) // once, not once per workspace
	if err != nil {
		return nil, fmt.Errorf("auth url %q: %w", o.AuthURL, err)
	}
	var sec sections
	for _, ws := range wss {
		if Routable(ws) {
			add(&sec, ws, o, auth)
		}
	}
	if o.APIURL != "" {
		// Never the dev-token route: behind Traefik every caller would look
		// like Traefik, and Traefik's port is the one users reach. The
		// dashboard is / and /ui/ (its development sign-in also checks the
		// X-Forwarded-For Traefik sets).
		rule := "(PathPrefix(`/api/`) && !PathPrefix(`/api/v1/dev/`)) || (Path(`/`) || PathPrefix(`/ui/`))"
		if o.Mode == wsurl.ModeSubdomain {
			// The control plane only on the public host: on a workspace's
			// host /api/ would be same-origin with the workspace's pages.
			if o.PublicHost == "" {
				return nil, fmt.Errorf("subdomain mode routes the API on the public host: no public host given")
			}
			rule = "Host(`" + o.PublicHost + "`) && (" + rule + ")"
		}
		sec.routers = append(sec.routers, entry[router]{"berth-api", router{Rule: rule, EntryPoints: []string{o.EntryPoint}, Middlewares: []string{}, Service: "berth-api"}})
		sec.services = append(sec.services, entry[svc]{"berth-api", svc{LoadBalancer: loadBalancer{Servers: []server{{URL: o.APIURL}}}}})
	}
	// Traefik skips an empty configuration and keeps serving the previous
	// one, so the last stopped workspace would keep its route. A service no
	// router uses keeps the document non-empty.
	sec.services = append(sec.services, entry[svc]{placeholder, svc{LoadBalancer: loadBalancer{Servers: []server{{URL: "http://127.0.0.1:9"}}}}})
	const header = "# Generated by berth router-sync from the event log. Do not edit.\n"
	if len(wss) <= compactAbove {
		// Indented, keys sorted, for a person reading a few routes.
		d := doc{HTTP: httpConf{Routers: sec.routers.asMap(), Middlewares: sec.middlewares.asMap(), Services: sec.services.asMap(),
			ServersTransports: map[string]serverTransport{WorkspaceTransport: {ForwardingTimeouts: forwardingTimeouts{DialTimeout: dialTimeout}}}}}
		out, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render routes: %w", err)
		}
		return append(append([]byte(header), out...), '\n'), nil
	}
	// Past compactAbove: compact, in the workspaces' order, appended by
	// hand into a buffer sized for it (TestCompactIsTheSameConfiguration
	// holds it to the indented file). Indenting, filling maps, sorting their
	// keys and reflection took most of the time (10,000 routes: 240 ms
	// indented, 105 ms compact from maps, 88 ms by reflection in order).
	b := make([]byte, 0, len(header)+len(wss)*900+4096)
	b = append(b, header...)
	b = append(b, `{"http":{"routers":`...)
	b = appendSection(b, sec.routers, router.appendJSON)
	b = append(b, `,"middlewares":`...)
	b = appendSection(b, sec.middlewares, middleware.appendJSON)
	b = append(b, `,"services":`...)
	b = appendSection(b, sec.services, svc.appendJSON)
	b = append(b, `,"serversTransports":{`...)
	b = quote(b, WorkspaceTransport)
	b = append(b, `:{"forwardingTimeouts":{"dialTimeout":"`+dialTimeout+`"}}}}}`...)
	return append(b, '\n'), nil
}

// compactAbove is how many workspaces a file may route and still be
// indented.
var compactAbove = 200

func add(sec *sections, ws events.Workspace, o Options, authURL *url.URL) {
	if !events.ValidName(ws.Name) {
		return // never pasted into a rule (the fold refuses such names too)
	}
	key := "ws-" + ws.Name
	host := ws.Endpoint.IP
	if o.Backend == BackendHost {
		host = ws.Endpoint.Host
	}
	if host == "" || ws.Endpoint.Port == 0 {
		return // nothing to dial yet
	}
	if o.Mode == wsurl.ModeSubdomain && strings.EqualFold(ws.Name+"."+o.Domain, o.PublicHost) {
		return // the public host is the control plane's, never a workspace's
	}
	auth := *authURL
	if auth.RawQuery == "" {
		auth.RawQuery = "workspace=" + url.QueryEscape(ws.ID)
	} else {
		q := auth.Query()
		q.Set("workspace", ws.ID)
		auth.RawQuery = q.Encode()
	}
	sec.services = append(sec.services, entry[svc]{key, svc{LoadBalancer: loadBalancer{Servers: []server{{URL: "http://" + host + ":" + strconv.Itoa(ws.Endpoint.Port)}}, ServersTransport: WorkspaceTransport}}})
	// Cookie and Authorization come back from the API with Berth's own
	// credentials removed, so the workspace never sees the platform token.
	sec.middlewares = append(sec.middlewares, entry[middleware]{key + "-auth", middleware{ForwardAuth: &forwardAuth{Address: auth.String(), AuthResponseHeaders: []string{"Authorization", "Cookie"}, MaxResponseBodySize: 64 << 10}}})
	eps := []string{o.EntryPoint}
	if o.Mode == wsurl.ModeSubdomain {
		sec.routers = append(sec.routers, entry[router]{key, router{Rule: "Host(`" + ws.Name + "." + o.Domain + "`)", EntryPoints: eps, Middlewares: []string{key + "-auth"}, Service: key}})
		return
	}
	prefix := wsurl.PathPrefix(ws.Name)
	// The trailing slash keeps /workspace-ab/ from capturing /workspace-abc/.
	mws := []string{key + "-auth", key + "-strip"}
	if o.KeepPrefix != nil && o.KeepPrefix(ws.Image) {
		mws = mws[:1] // the app serves under BERTH_BASE_PATH itself
	} else {
		sec.middlewares = append(sec.middlewares, entry[middleware]{key + "-strip", middleware{StripPrefix: &stripPrefix{Prefixes: []string{prefix}}}})
	}
	sec.middlewares = append(sec.middlewares, entry[middleware]{key + "-slash", middleware{RedirectRegex: &redirectRegex{Regex: "^(https?://[^/]+" + prefix + ")(\\?.*)?$", Replacement: "${1}/${2}", Permanent: true}}})
	sec.routers = append(sec.routers, entry[router]{key, router{Rule: "PathPrefix(`" + prefix + "/`)", EntryPoints: eps, Middlewares: mws, Service: key}})
	// "wsbare-", not "ws-<name>-bare": a workspace named <name>-bare would
	// take that name for its own router.
	// forwardAuth first here too: Traefik passes on to the workspace what
	// the redirect's regex does not match (an empty Host, HTTP/1.0).
	sec.routers = append(sec.routers, entry[router]{"wsbare-" + ws.Name, router{Rule: "Path(`" + prefix + "`)", EntryPoints: eps, Middlewares: []string{key + "-auth", key + "-slash"}, Service: key}})
}

// appendSection appends a section as a JSON object, its entries in order.
func appendSection[T any](b []byte, o ordered[T], value func(T, []byte) []byte) []byte {
	b = append(b, '{')
	for i, e := range o {
		if i > 0 {
			b = append(b, ',')
		}
		b = quote(b, e.name)
		b = append(b, ':')
		b = value(e.v, b)
	}
	return append(b, '}')
}

// The appendJSON methods write what encoding/json writes for the types'
// tags, compact.

func (r router) appendJSON(b []byte) []byte {
	b = append(b, `{"rule":`...)
	b = quote(b, r.Rule)
	b = append(b, `,"entryPoints":`...)
	b = appendStrings(b, r.EntryPoints)
	b = append(b, `,"middlewares":`...)
	b = appendStrings(b, r.Middlewares)
	b = append(b, `,"service":`...)
	b = quote(b, r.Service)
	if r.Priority != 0 {
		b = append(b, `,"priority":`...)
		b = strconv.AppendInt(b, int64(r.Priority), 10)
	}
	return append(b, '}')
}

func (m middleware) appendJSON(b []byte) []byte {
	b = append(b, '{')
	switch {
	case m.ForwardAuth != nil:
		f := m.ForwardAuth
		b = append(b, `"forwardAuth":{"address":`...)
		b = quote(b, f.Address)
		b = append(b, `,"trustForwardHeader":`...)
		b = strconv.AppendBool(b, f.TrustForwardHeader)
		b = append(b, `,"authResponseHeaders":`...)
		b = appendStrings(b, f.AuthResponseHeaders)
		b = append(b, `,"maxResponseBodySize":`...)
		b = strconv.AppendInt(b, f.MaxResponseBodySize, 10)
		b = append(b, '}')
	case m.StripPrefix != nil:
		b = append(b, `"stripPrefix":{"prefixes":`...)
		b = appendStrings(b, m.StripPrefix.Prefixes)
		b = append(b, '}')
	case m.RedirectRegex != nil:
		rr := m.RedirectRegex
		b = append(b, `"redirectRegex":{"regex":`...)
		b = quote(b, rr.Regex)
		b = append(b, `,"replacement":`...)
		b = quote(b, rr.Replacement)
		b = append(b, `,"permanent":`...)
		b = strconv.AppendBool(b, rr.Permanent)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (s svc) appendJSON(b []byte) []byte {
	b = append(b, `{"loadBalancer":{"servers":[`...)
	for i, sv := range s.LoadBalancer.Servers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"url":`...)
		b = quote(b, sv.URL)
		b = append(b, '}')
	}
	b = append(b, ']')
	if s.LoadBalancer.ServersTransport != "" {
		b = append(b, `,"serversTransport":`...)
		b = quote(b, s.LoadBalancer.ServersTransport)
	}
	return append(b, "}}"...)
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = quote(b, s)
	}
	return append(b, ']')
}

// quote appends s as a JSON string. jsontext reports invalid UTF-8 and
// still writes it with replacement characters, as encoding/json does.
func quote(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}
