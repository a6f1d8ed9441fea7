// Package render turns the running workspaces into Traefik's dynamic
// configuration. It is a pure function of its input: the same workspaces
// always give the same bytes, so a restart or a replay cannot change routes.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

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

// Render returns the dynamic configuration for wss (non-routable ones are
// skipped).
func Render(wss []events.Workspace, o Options) ([]byte, error) {
	wss = slices.Clone(wss)
	sort.Slice(wss, func(i, j int) bool { return wss[i].Name < wss[j].Name })
	d := doc{HTTP: httpConf{Routers: map[string]router{}, Middlewares: map[string]middleware{}, Services: map[string]svc{}}}
	auth, err := url.Parse(o.AuthURL) // once, not once per workspace
	if err != nil {
		return nil, fmt.Errorf("auth url %q: %w", o.AuthURL, err)
	}
	for _, ws := range wss {
		if Routable(ws) {
			add(&d.HTTP, ws, o, auth)
		}
	}
	if o.APIURL != "" {
		// Never the dev-token route: behind Traefik every caller would look
		// like Traefik, and Traefik's port is the one users reach. The
		// dashboard is / and /ui/ (its development sign-in also checks the
		// X-Forwarded-For Traefik sets).
		dashboard := "Path(`/`) || PathPrefix(`/ui/`)"
		if o.Mode == wsurl.ModeSubdomain && o.PublicHost != "" {
			dashboard = "Host(`" + o.PublicHost + "`) && (" + dashboard + ")"
		}
		d.HTTP.Routers["berth-api"] = router{Rule: "(PathPrefix(`/api/`) && !PathPrefix(`/api/v1/dev/`)) || (" + dashboard + ")", EntryPoints: []string{o.EntryPoint}, Middlewares: []string{}, Service: "berth-api"}
		d.HTTP.Services["berth-api"] = svc{LoadBalancer: loadBalancer{Servers: []server{{URL: o.APIURL}}}}
	}
	// Traefik skips an empty configuration and keeps serving the previous
	// one, so the last stopped workspace would keep its route. A service no
	// router uses keeps the document non-empty.
	d.HTTP.Services[placeholder] = svc{LoadBalancer: loadBalancer{Servers: []server{{URL: "http://127.0.0.1:9"}}}}
	d.HTTP.ServersTransports = map[string]serverTransport{WorkspaceTransport: {ForwardingTimeouts: forwardingTimeouts{DialTimeout: "1s"}}}
	// Indented for a person reading a few routes; compact past
	// compactAbove, where indenting took more time than everything else
	// (10,000 routes: 240 ms indented), written straight into a buffer
	// sized for it (growing an 8 MiB buffer was a quarter of the time).
	const header = "# Generated by berth router-sync from the event log. Do not edit.\n"
	if len(wss) <= compactAbove {
		out, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render routes: %w", err)
		}
		return append(append([]byte(header), out...), '\n'), nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, len(header)+len(wss)*900+4096))
	buf.WriteString(header)
	if err := jsonv2.MarshalWrite(buf, d, jsonv1.DefaultOptionsV1()); err != nil {
		return nil, fmt.Errorf("render routes: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// compactAbove is how many workspaces a file may route and still be
// indented.
var compactAbove = 200

func add(h *httpConf, ws events.Workspace, o Options, authURL *url.URL) {
	key := "ws-" + ws.Name
	host := ws.Endpoint.IP
	if o.Backend == BackendHost {
		host = ws.Endpoint.Host
	}
	if host == "" || ws.Endpoint.Port == 0 {
		return // nothing to dial yet
	}
	auth := *authURL
	q := auth.Query()
	q.Set("workspace", ws.ID)
	auth.RawQuery = q.Encode()
	h.Services[key] = svc{LoadBalancer: loadBalancer{Servers: []server{{URL: "http://" + host + ":" + strconv.Itoa(ws.Endpoint.Port)}}, ServersTransport: WorkspaceTransport}}
	// Cookie and Authorization come back from the API with Berth's own
	// credentials removed, so the workspace never sees the platform token.
	h.Middlewares[key+"-auth"] = middleware{ForwardAuth: &forwardAuth{Address: auth.String(), AuthResponseHeaders: []string{"Authorization", "Cookie"}, MaxResponseBodySize: 64 << 10}}
	entry := []string{o.EntryPoint}
	if o.Mode == wsurl.ModeSubdomain {
		h.Routers[key] = router{Rule: "Host(`" + ws.Name + "." + o.Domain + "`)", EntryPoints: entry, Middlewares: []string{key + "-auth"}, Service: key}
		return
	}
	prefix := wsurl.PathPrefix(ws.Name)
	h.Middlewares[key+"-strip"] = middleware{StripPrefix: &stripPrefix{Prefixes: []string{prefix}}}
	h.Middlewares[key+"-slash"] = middleware{RedirectRegex: &redirectRegex{Regex: "^(https?://[^/]+" + prefix + ")(\\?.*)?$", Replacement: "${1}/${2}", Permanent: true}}
	// The trailing slash keeps /workspace-ab/ from capturing /workspace-abc/.
	mws := []string{key + "-auth", key + "-strip"}
	if o.KeepPrefix != nil && o.KeepPrefix(ws.Image) {
		mws = mws[:1] // the app serves under BERTH_BASE_PATH itself
		delete(h.Middlewares, key+"-strip")
	}
	h.Routers[key] = router{Rule: "PathPrefix(`" + prefix + "/`)", EntryPoints: entry, Middlewares: mws, Service: key}
	h.Routers[key+"-bare"] = router{Rule: "Path(`" + prefix + "`)", EntryPoints: entry, Middlewares: []string{key + "-slash"}, Service: key}
}
