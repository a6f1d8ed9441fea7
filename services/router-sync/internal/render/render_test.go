package render

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/wsurl"
)

var update = flag.Bool("update", false, "rewrite golden files")

func running(name, id, ip string) events.Workspace {
	return events.Workspace{ID: id, Name: name, Status: events.StatusRunning,
		Endpoint: &events.Endpoint{ContainerID: "c-" + name, Host: "berth-" + name, IP: ip, Port: 8080}}
}

func TestRenderGolden(t *testing.T) {
	pathOpts := Options{Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://127.0.0.1:8080/api/v1/auth/forward", Backend: BackendIP}
	subOpts := Options{Mode: wsurl.ModeSubdomain, Domain: "ws.example.com", EntryPoint: "websecure", AuthURL: "http://api:8080/api/v1/auth/forward", Backend: BackendHost}
	two := []events.Workspace{
		running("abc", "22222222-0000-0000-0000-000000000000", "172.18.0.3"),
		running("ab", "11111111-0000-0000-0000-000000000000", "172.18.0.2"),
		{ID: "33333333-0000-0000-0000-000000000000", Name: "stopped", Status: events.StatusStopped},
		{ID: "44444444-0000-0000-0000-000000000000", Name: "starting", Status: events.StatusStarting},
	}
	var many []events.Workspace
	for i := range 25 {
		many = append(many, running(fmt.Sprintf("ws%02d", i), fmt.Sprintf("%08d-0000-0000-0000-000000000000", i), fmt.Sprintf("172.18.1.%d", i+2)))
	}
	cases := map[string]struct {
		wss []events.Workspace
		o   Options
	}{
		"path":      {two, pathOpts},
		"subdomain": {two, subOpts},
		"zero":      {nil, pathOpts},
		"many":      {many, pathOpts},
		"with-api":  {two[:1], Options{Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://api:8080/api/v1/auth/forward", Backend: BackendHost, APIURL: "http://api:8080"}},
		// The dashboard on the public host only: / of a workspace's host is
		// the workspace's.
		"subdomain-with-api": {two[:1], Options{Mode: wsurl.ModeSubdomain, Domain: subOpts.Domain, EntryPoint: "web", AuthURL: "http://api:8080/api/v1/auth/forward",
			Backend: BackendHost, APIURL: "http://api:8080", PublicHost: "berth.example"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Render(c.wss, c.o)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Render(c.wss, c.o)
			if !bytes.Equal(got, again) {
				t.Fatal("render is not deterministic")
			}
			path := filepath.Join("testdata", name+".yml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (go test -update creates it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from golden:\n%s", name, got)
			}
		})
	}
}

func TestRenderRejectsBadAuthURL(t *testing.T) {
	_, err := Render([]events.Workspace{running("a", "id", "10.0.0.2")}, Options{Mode: wsurl.ModePath, AuthURL: "http://[::1"})
	if err == nil {
		t.Fatal("bad auth url accepted")
	}
}

// TestKeepPrefix: in path mode, a workspace whose image keeps its prefix
// (profile prefix "keep", e.g. Jupyter with base_url) is routed without
// the strip middleware; others keep it.
func TestKeepPrefix(t *testing.T) {
	lab := running("lab", "55555555-0000-0000-0000-000000000000", "172.18.0.5")
	lab.Image = "example/jupyterlab:4"
	term := running("term", "66666666-0000-0000-0000-000000000000", "172.18.0.6")
	o := Options{Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://127.0.0.1:8080/api/v1/auth/forward", Backend: BackendIP,
		KeepPrefix: func(image string) bool { return image == "example/jupyterlab:4" }}
	out, err := Render([]events.Workspace{lab, term}, o)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		HTTP struct {
			Routers     map[string]struct{ Middlewares []string }
			Middlewares map[string]json.RawMessage
		}
	}
	body := out[bytes.IndexByte(out, '{'):] // after the header comment
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for key, r := range d.HTTP.Routers {
		strips := slices.ContainsFunc(r.Middlewares, func(m string) bool { return strings.HasSuffix(m, "-strip") })
		switch {
		case strings.Contains(key, "55555555") && !strings.HasPrefix(key, "wsbare-") && strips:
			t.Errorf("the lab's router strips its prefix: %v", r.Middlewares)
		case strings.Contains(key, "66666666") && !strings.HasPrefix(key, "wsbare-") && !strips:
			t.Errorf("the terminal's router keeps its prefix: %v", r.Middlewares)
		}
	}
}

// TestCompactIsTheSameConfiguration: past compactAbove workspaces the file
// is compact JSON, which Traefik reads as the same configuration.
func TestCompactIsTheSameConfiguration(t *testing.T) {
	var wss []events.Workspace
	for i := range 300 {
		ws := running(fmt.Sprintf("w%03d", i), fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), "172.18.0.2")
		if i%3 == 0 {
			ws.Image = "keeps/prefix"
		}
		wss = append(wss, ws)
	}
	keep := func(image string) bool { return image == "keeps/prefix" }
	for name, o := range map[string]Options{
		"path":      {Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://a/f", Backend: BackendIP, APIURL: "http://a"},
		"keep":      {Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://a/f?x=1&y=<2>", Backend: BackendHost, KeepPrefix: keep},
		"subdomain": {Mode: wsurl.ModeSubdomain, Domain: "ws.example", EntryPoint: "websecure", AuthURL: "http://a/f", Backend: BackendHost, APIURL: "http://a", PublicHost: "berth.example"},
	} {
		t.Run(name, func(t *testing.T) {
			compact, err := Render(wss, o)
			if err != nil {
				t.Fatal(err)
			}
			saved := compactAbove
			compactAbove = 1000
			indented, err := Render(wss, o)
			compactAbove = saved
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			if err := json.Unmarshal(compact[bytes.IndexByte(compact, '{'):], &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(indented[bytes.IndexByte(indented, '{'):], &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) || len(compact) >= len(indented) {
				t.Fatalf("compact (%d bytes) differs from indented (%d bytes)", len(compact), len(indented))
			}
		})
	}
}

// TestRoutable: a route exists from addressed (starting, with the address
// of its started container) through running, and drops at the stop request.
func TestRoutable(t *testing.T) {
	at := &events.Endpoint{ContainerID: "c", IP: "172.18.0.9", Port: 8080}
	for _, c := range []struct {
		status events.Status
		ep     *events.Endpoint
		want   bool
	}{
		{events.StatusRunning, at, true},
		{events.StatusStarting, at, true}, // addressed
		{events.StatusStarting, nil, false},
		{events.StatusRunning, nil, false},
		{events.StatusStopping, at, false}, // requests get 404 before the container stops
		{events.StatusStopped, at, false},
		{events.StatusError, at, false},
		{events.StatusDeleting, at, false},
	} {
		if got := Routable(events.Workspace{Status: c.status, Endpoint: c.ep}); got != c.want {
			t.Errorf("Routable(%s, endpoint %t) = %t, want %t", c.status, c.ep != nil, got, c.want)
		}
	}
}

func TestDefaultTLSStore(t *testing.T) {
	out, err := DefaultTLSStore(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		TLS struct {
			Stores map[string]struct {
				DefaultCertificate struct{ CertFile, KeyFile string }
			}
		}
	}
	body := out[bytes.IndexByte(out, '\n')+1:]
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not JSON (YAML) after the comment: %v", err)
	}
	c := doc.TLS.Stores["default"].DefaultCertificate
	pair, err := tls.X509KeyPair([]byte(c.CertFile), []byte(c.KeyFile))
	if err != nil {
		t.Fatalf("certificate and key do not match: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(leaf.NotAfter) < 5*365*24*time.Hour {
		t.Fatalf("certificate: %v, valid until %s", err, leaf.NotAfter)
	}
}

// TestNoNameTakesAnother: a workspace named <name>-bare once took the name
// of <name>'s bare-path router (the later one won), so /workspace-<name>
// no longer redirected. Every object name is now used once, large file or
// small.
func TestNoNameTakesAnother(t *testing.T) {
	o := Options{Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://a/f", Backend: BackendIP}
	for _, n := range []int{2, 300} { // indented, compact
		wss := []events.Workspace{running("alice", "11111111-0000-4000-8000-000000000000", "172.18.0.2"),
			running("alice-bare", "22222222-0000-4000-8000-000000000000", "172.18.0.3")}
		for i := len(wss); i < n; i++ {
			wss = append(wss, running(fmt.Sprintf("w%03d", i), fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), "172.18.0.9"))
		}
		out, err := Render(wss, o)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			HTTP struct {
				Routers map[string]struct{ Rule string }
			}
		}
		if err := json.Unmarshal(out[bytes.IndexByte(out, '{'):], &d); err != nil {
			t.Fatal(err)
		}
		if got := len(d.HTTP.Routers); got != 2*n {
			t.Fatalf("%d workspaces: %d routers, want %d (a name taken twice)", n, got, 2*n)
		}
		if d.HTTP.Routers["wsbare-alice"].Rule != "Path(`/workspace-alice`)" {
			t.Fatalf("alice's bare-path router: %+v", d.HTTP.Routers["wsbare-alice"])
		}
	}
}

// TestEveryRouterAuthenticates walks the rendered configuration in every
// mode (prefix kept or stripped, indented and compact) and fails if a
// router that leads to a workspace does not run forwardAuth first: a router
// without it (the bare path route once) lets through whatever its other
// middlewares pass on, an empty Host or HTTP/1.0 among them.
func TestEveryRouterAuthenticates(t *testing.T) {
	var wss []events.Workspace
	for i := range 3 {
		wss = append(wss, running(fmt.Sprintf("ws%d", i), fmt.Sprintf("%08d-0000-0000-0000-000000000000", i), fmt.Sprintf("172.18.1.%d", i+2)))
	}
	var big []events.Workspace
	for i := range compactAbove + 1 {
		big = append(big, running(fmt.Sprintf("w%04d", i), fmt.Sprintf("%08d-0000-0000-0000-000000000001", i), "172.18.2.2"))
	}
	keep := func(string) bool { return true }
	auth := "http://api:8080/api/v1/auth/forward"
	for name, o := range map[string]Options{
		"path":           {Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: auth, Backend: BackendIP, APIURL: "http://api:8080"},
		"path-keep":      {Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: auth, Backend: BackendIP, KeepPrefix: keep},
		"subdomain":      {Mode: wsurl.ModeSubdomain, Domain: "ws.example", EntryPoint: "web", AuthURL: auth, Backend: BackendHost, APIURL: "http://api:8080", PublicHost: "ws.example"},
		"subdomain-keep": {Mode: wsurl.ModeSubdomain, Domain: "ws.example", EntryPoint: "web", AuthURL: auth, Backend: BackendHost, KeepPrefix: keep},
	} {
		for _, in := range [][]events.Workspace{wss, big} {
			out, err := Render(in, o)
			if err != nil {
				t.Fatal(err)
			}
			var d doc
			if err := json.Unmarshal(out[bytes.IndexByte(out, '\n')+1:], &d); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			workspaceRouters := 0
			for rname, r := range d.HTTP.Routers {
				if rname == "berth-api" {
					continue
				}
				workspaceRouters++
				if len(r.Middlewares) == 0 {
					t.Errorf("%s: router %s has no middleware", name, rname)
					continue
				}
				first, ok := d.HTTP.Middlewares[r.Middlewares[0]]
				if !ok || first.ForwardAuth == nil {
					t.Errorf("%s: router %s starts with %q, not forwardAuth", name, rname, r.Middlewares[0])
				} else if !strings.Contains(first.ForwardAuth.Address, "workspace=") {
					t.Errorf("%s: router %s asks about no workspace: %s", name, rname, first.ForwardAuth.Address)
				}
			}
			if workspaceRouters < len(in) {
				t.Errorf("%s: %d routers for %d workspaces", name, workspaceRouters, len(in))
			}
		}
	}
}

// TestControlPlaneOnThePublicHostOnly: in subdomain mode the API and the
// dashboard are routed on the public host alone (on a workspace's host
// /api/ would be same-origin with its pages), and a workspace whose host
// would be the public host gets no route.
func TestControlPlaneOnThePublicHostOnly(t *testing.T) {
	o := Options{Mode: wsurl.ModeSubdomain, Domain: "example.com", EntryPoint: "web", AuthURL: "http://api:8080/api/v1/auth/forward",
		Backend: BackendHost, APIURL: "http://api:8080", PublicHost: "berth.example.com"}
	out, err := Render([]events.Workspace{running("alice", "11111111-0000-0000-0000-000000000000", "172.18.0.2"),
		running("berth", "22222222-0000-0000-0000-000000000000", "172.18.0.3")}, o)
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := json.Unmarshal(out[bytes.IndexByte(out, '\n')+1:], &d); err != nil {
		t.Fatal(err)
	}
	api := d.HTTP.Routers["berth-api"].Rule
	if !strings.HasPrefix(api, "Host(`berth.example.com`) && (") || !strings.HasSuffix(api, ")") {
		t.Errorf("the API's rule is not bound to the public host: %s", api)
	}
	if _, ok := d.HTTP.Routers["ws-berth"]; ok {
		t.Error("a workspace took the public host")
	}
	if _, ok := d.HTTP.Routers["ws-alice"]; !ok {
		t.Error("alice is not routed")
	}
	o.PublicHost = ""
	if _, err := Render(nil, o); err == nil {
		t.Error("subdomain mode with the API and no public host rendered")
	}
}

// TestNoRuleFromABadName: a name that is not a DNS label (from a log
// written with a leaked credential: the fold refuses it too) never reaches
// Traefik's rules.
func TestNoRuleFromABadName(t *testing.T) {
	for _, mode := range []wsurl.Mode{wsurl.ModePath, wsurl.ModeSubdomain} {
		o := Options{Mode: mode, Domain: "ws.example", EntryPoint: "web", AuthURL: "http://api:8080/api/v1/auth/forward", Backend: BackendIP}
		out, err := Render([]events.Workspace{running("a`) || PathPrefix(`/", "11111111-0000-0000-0000-000000000000", "172.18.0.2"),
			running("ok", "22222222-0000-0000-0000-000000000000", "172.18.0.3")}, o)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "PathPrefix(`/`)") || strings.Count(string(out), "172.18.0.2") != 0 {
			t.Errorf("%s: the bad name was rendered:\n%s", mode, out)
		}
		if !strings.Contains(string(out), "172.18.0.3") {
			t.Errorf("%s: the good workspace is missing", mode)
		}
	}
}
