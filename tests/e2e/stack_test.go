// Package e2e runs Berth the way `make run` does, as real processes (API
// with embedded NATS, provisioner, router-sync, Traefik) against the real
// Docker Engine, and checks it from the outside over HTTP.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/dockertest"
)

func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		require.NotEqual(t, dir, filepath.Dir(dir), "go.work not found above the test")
		dir = filepath.Dir(dir)
	}
}

// freePort picks a free port below the kernel's ephemeral range (32768 and
// up on Linux). The stack's programs bind it a moment later; a port from
// the ephemeral range could be handed to another test's ":0" listener in
// between (seen once in CI: router-sync could not bind, and another
// process answered its readiness URL).
func freePort(t testing.TB) string {
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000-31999")
	return ""
}

// proc is one running program of the stack.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	args []string
	env  []string
}

// stack is a whole Berth on this machine.
type stack struct {
	t                          testing.TB
	root, bin, dir             string
	api, web, router, provAddr string
	natsAddr, network, dynamic string
	procs                      map[string]*proc
	cli                        *client.Client
}

// newStack starts the stack; env is added to every Berth service's
// environment (e.g. BERTH_ROUTING_MODE=subdomain), later values winning.
func newStack(t testing.TB, env ...string) *stack {
	cli := dockertest.Client(t)
	dockertest.EnsureImages(t, cli)
	root := repoRoot(t)
	s := &stack{t: t, root: root, dir: t.TempDir(), procs: map[string]*proc{}, cli: cli}
	s.bin = filepath.Join(s.dir, "bin")
	build := exec.Command("go", "build", "-o", s.bin+"/", "./services/api", "./services/provisioner", "./services/router-sync", "./cmd/berthctl")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build services: %s", out)
	mk := exec.Command("make", "-s", "traefik")
	mk.Dir = root
	out, err = mk.CombinedOutput()
	require.NoError(t, err, "make traefik: %s", out)
	where := exec.Command("make", "-s", "traefik-path")
	where.Dir = root
	out, err = where.Output()
	require.NoError(t, err, "make traefik-path")
	traefik := filepath.Join(root, strings.TrimSpace(string(out)))

	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	s.network = "berth-e2e-" + hex.EncodeToString(suffix)
	s.api, s.web, s.router, s.provAddr, s.natsAddr = freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	s.dynamic = filepath.Join(s.dir, "dynamic")
	require.NoError(t, os.MkdirAll(s.dynamic, 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(s.dir, "projects"), 0o755))

	static, err := os.ReadFile(filepath.Join(root, "deploy/traefik/traefik.yml"))
	require.NoError(t, err)
	web := `"` + s.web + `"`
	if slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "BERTH_PUBLIC_URL=https://") }) {
		// An https public URL: Traefik terminates TLS on the entry point,
		// with the default certificate router-sync gives its TLS store.
		web += "\n    http:\n      tls: {}"
	}
	cfg := strings.NewReplacer(`"127.0.0.1:8000"`, web, `"127.0.0.1:8090"`, `"`+freePort(t)+`"`,
		"directory: data/traefik/dynamic", "directory: "+s.dynamic).Replace(string(static))
	require.NotEqual(t, string(static), cfg)
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "traefik.yml"), []byte(cfg), 0o644))

	t.Cleanup(s.stopAll)
	// The tests poll the API every 10 ms to measure latency, far above the
	// per-caller rate limit; the limiter has its own tests, and a test that
	// wants it passes BERTH_API_RATE (later values win).
	// "{port}" in env is Traefik's port (a public URL on a name of one's own).
	_, webPort, _ := net.SplitHostPort(s.web)
	env = slices.Clone(env)
	for i := range env {
		env[i] = strings.ReplaceAll(env[i], "{port}", webPort)
	}
	common := append([]string{"BERTH_LOG_LEVEL=info", "BERTH_PROJECTS_ROOT=" + filepath.Join(s.dir, "projects"),
		"BERTH_PUBLIC_URL=http://" + s.web, "BERTH_API_RATE=0"}, env...)
	nats := "BERTH_NATS_URL=nats://" + s.natsAddr // the API's embedded server
	s.start("api", filepath.Join(s.bin, "api"), nil, append(slices.Clone(common), "BERTH_HTTP_ADDR="+s.api, "BERTH_NATS_LISTEN="+s.natsAddr,
		"BERTH_DATA_DIR="+filepath.Join(s.dir, "data"), "BERTH_DEV_TOKENS=true"))
	s.waitReady("http://" + s.api + "/readyz")
	s.start("provisioner", filepath.Join(s.bin, "provisioner"), nil, append(slices.Clone(common), nats, "BERTH_PROVISIONER_HTTP_ADDR="+s.provAddr, "BERTH_NETWORK="+s.network))
	s.start("router-sync", filepath.Join(s.bin, "router-sync"), nil, append(slices.Clone(common), nats, "BERTH_ROUTER_HTTP_ADDR="+s.router,
		"BERTH_TRAEFIK_DYNAMIC_DIR="+s.dynamic, "BERTH_AUTH_URL=http://"+s.api+"/api/v1/auth/forward", "BERTH_ROUTE_API_URL=http://"+s.api))
	s.start("traefik", traefik, []string{"--configfile=" + filepath.Join(s.dir, "traefik.yml")}, nil)
	s.waitReady("http://" + s.provAddr + "/readyz")
	s.waitReady("http://" + s.router + "/readyz")
	return s
}

func (s *stack) start(name, path string, args, env []string) {
	p := &proc{name: name, log: &bytes.Buffer{}, args: args, env: env}
	p.cmd = exec.Command(path, args...)
	p.cmd.Dir = s.dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	require.NoError(s.t, p.cmd.Start(), "start %s", name)
	s.procs[name] = p
}

// restart stops a program and starts it again with the same settings.
func (s *stack) restart(name string, between func()) {
	p := s.procs[name]
	s.stop(p)
	if between != nil {
		between()
	}
	s.start(name, p.cmd.Path, p.args, p.env)
}

// kill ends a program the way a crash or kill -9 does: no shutdown at all.
func (s *stack) kill(name string) {
	p := s.procs[name]
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// startAgain starts a stopped or killed program with its settings, env
// added on top (later values win).
func (s *stack) startAgain(name string, env ...string) {
	p := s.procs[name]
	s.start(name, p.cmd.Path, p.args, append(slices.Clone(p.env), env...))
}

func (s *stack) stop(p *proc) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		s.t.Errorf("%s did not stop on SIGTERM within 15s", p.name)
	}
}

func (s *stack) stopAll() {
	for _, name := range []string{"traefik", "router-sync", "provisioner", "api"} {
		if p := s.procs[name]; p != nil {
			s.stop(p)
			if s.t.Failed() {
				s.t.Logf("--- %s log ---\n%s", name, p.log.String())
			}
		}
	}
	ctx := context.Background()
	list, _ := s.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("network", s.network))})
	for _, c := range list {
		if s.t.Failed() {
			// What the workspace said: its server's log is often why a
			// browser step timed out.
			out, _ := exec.Command("docker", "logs", "--tail", "80", c.ID).CombinedOutput()
			s.t.Logf("--- container %s (%s, %s) log ---\n%s", c.Names, c.Image, c.Status, out)
		}
		_ = s.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		if id := c.Labels["berth.workspace.id"]; id != "" {
			_ = s.cli.VolumeRemove(ctx, "berth-home-"+id, true)
		}
	}
	_ = s.cli.NetworkRemove(ctx, s.network)
}

func (s *stack) waitReady(url string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := quick.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("%s not ready after 30s", url)
}

var quick = &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// call sends a request and returns status and body.
func call(t testing.TB, method, url, token string, body any, headers ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := quick.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

func (s *stack) token(sub string, roles ...string) string {
	_, b, _ := call(s.t, "POST", "http://"+s.api+"/api/v1/dev/token", "", map[string]any{"sub": sub, "roles": roles})
	var out struct{ Token string }
	require.NoError(s.t, json.Unmarshal(b, &out), "%s", b)
	return out.Token
}

// natsConn connects to the stack's bus as the operators' identity "ops"
// (the bus refuses clients without credentials).
func (s *stack) natsConn() *nats.Conn {
	s.t.Helper()
	pw, err := os.ReadFile(filepath.Join(s.dir, "data", "nats-users", "ops.password"))
	require.NoError(s.t, err)
	nc, err := nats.Connect("nats://"+s.natsAddr, nats.UserInfo("ops", strings.TrimSpace(string(pw))))
	require.NoError(s.t, err)
	return nc
}

func (s *stack) url(name string) string { return fmt.Sprintf("http://%s/workspace-%s/", s.web, name) }

// until polls f every 10ms and returns how long it took to become true.
func until(t testing.TB, within time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
