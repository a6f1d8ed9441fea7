// Package compose brings the compose stack up from the local images and
// checks it from the outside: launches through the compose Traefik, service
// restarts, `down` then `up`, and who holds the Docker socket.
package compose

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// Ports of the test stack, apart from make up's defaults so a developer's
// running stack is not disturbed.
const (
	project  = "berth-composetest"
	httpPort = "18000"
	apiPort  = "18080"
	// Traefik and the provisioner share the host's network namespace.
	natsPort, provisionerPort, pingPort = "14222", "18081", "18090"
)

type stack struct {
	t       *testing.T
	root    string
	env     []string
	project string   // default: project
	files   []string // compose files under deploy/compose (default: compose.yaml)
}

func (s *stack) compose(args ...string) string {
	s.t.Helper()
	bin, pre := "docker-compose", []string{}
	if exec.Command("docker", "compose", "version").Run() == nil {
		bin, pre = "docker", []string{"compose"}
	}
	name, files := s.project, s.files
	if name == "" {
		name = project
	}
	if files == nil {
		files = []string{"compose.yaml"}
	}
	pre = append(pre, "-p", name)
	for _, f := range files {
		pre = append(pre, "-f", filepath.Join(s.root, "deploy/compose", f))
	}
	cmd := exec.Command(bin, append(pre, args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	out, err := cmd.CombinedOutput()
	require.NoError(s.t, err, "compose %v: %s", args, out)
	return string(out)
}

func call(method, url, token string, body any) (int, []byte) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func eventually(t *testing.T, within time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ports are where a test stack listens on the host.
type ports struct{ web, api, nats, nats2, nats3, provisioner, ping string }

// newStack checks compose is there (skipping, or failing under
// BERTH_REQUIRE_DOCKER=1), builds the images, and returns a stack of the
// given compose files with fresh bus passwords. Its cleanup takes the
// stack down with its volumes and removes the workspaces of owner.
func newStack(t *testing.T, name string, files []string, p ports, owner string, extra ...string) (*stack, map[string]string) {
	cli := dockertest.Client(t)
	if _, err := exec.LookPath("docker-compose"); err != nil && exec.Command("docker", "compose", "version").Run() != nil {
		if os.Getenv("BERTH_REQUIRE_DOCKER") == "1" {
			t.Fatal("neither docker compose nor docker-compose is installed")
		}
		t.Skip("skipping: neither docker compose nor docker-compose is installed")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	mk := exec.Command("make", "-s", "images")
	mk.Dir = root
	out, err := mk.CombinedOutput()
	require.NoError(t, err, "make images: %s", out)

	passwords, err := natsbus.EnsurePasswords(t.TempDir())
	require.NoError(t, err)
	s := &stack{t: t, root: root, project: name, files: files, env: append([]string{
		"BERTH_NATS_IMAGE=berth/nats:local", "BERTH_TRAEFIK_IMAGE=berth/traefik:local",
		"BERTH_PROJECTS_ROOT=" + t.TempDir(), "BERTH_DEV_TOKENS=true",
		"BERTH_HTTP_PORT=" + p.web, "BERTH_API_PORT=" + p.api, "BERTH_NATS_PORT=" + p.nats, "BERTH_NATS2_PORT=" + p.nats2, "BERTH_NATS3_PORT=" + p.nats3,
		"BERTH_PROVISIONER_PORT=" + p.provisioner, "BERTH_TRAEFIK_PING_PORT=" + p.ping,
		"BERTH_NATS_API_PASSWORD=" + passwords["api"], "BERTH_NATS_PROVISIONER_PASSWORD=" + passwords["provisioner"],
		"BERTH_NATS_ROUTER_SYNC_PASSWORD=" + passwords["router-sync"], "BERTH_NATS_REAPER_PASSWORD=" + passwords["reaper"],
		"BERTH_NATS_OPS_PASSWORD=" + passwords["ops"], "BERTH_NATS_INTAKE_PASSWORD=" + passwords["intake"],
		"BERTH_PUBLIC_URL=http://localhost:" + p.web,
	}, extra...)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.compose("logs", "--tail=40"))
		}
		s.compose("down", "-v")
		list, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.owner="+owner))})
		for _, c := range list {
			_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
			_ = cli.VolumeRemove(context.Background(), "berth-home-"+c.Labels["berth.workspace.id"], true)
		}
	})
	return s, passwords
}

// devToken mints a development token through the API's own port.
func devToken(t *testing.T, api, sub, role string) string {
	t.Helper()
	_, b := call("POST", api+"/api/v1/dev/token", "", map[string]any{"sub": sub, "roles": []string{role}})
	var out struct{ Token string }
	require.NoError(t, json.Unmarshal(b, &out), "%s", b)
	return out.Token
}

func TestComposeStack(t *testing.T) {
	cli := dockertest.Client(t)
	s, passwords := newStack(t, project, nil, ports{web: httpPort, api: apiPort, nats: natsPort, nats2: "4223", nats3: "4224", provisioner: provisionerPort, ping: pingPort},
		"composetest",
		// Lets one workspace below ask for a 2 s idle timeout.
		"BERTH_IDLE_TIMEOUT_MIN=1s", "BERTH_SWEEP_INTERVAL=1s",
		// One user runs three workspaces at once below.
		"BERTH_QUOTA_RUNNING=3")
	start := time.Now()
	s.compose("up", "-d")
	api := "http://localhost:" + apiPort
	eventually(t, 90*time.Second, "api ready", func() bool { c, _ := call("GET", api+"/readyz", "", nil); return c == 200 })
	t.Logf("cold up: %s", time.Since(start))

	admin, user := devToken(t, api, "root", "admin"), devToken(t, api, "composetest", "user")
	// Minted above through the API's loopback port; Traefik never routes
	// the dev-token route.
	code, b := call("POST", "http://localhost:"+httpPort+"/api/v1/dev/token", "", map[string]any{"sub": "root", "roles": []string{"admin"}})
	require.Equal(t, 404, code, "dev token through Traefik: %s", b)
	code, b = call("POST", api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Contains(t, []int{201, 409}, code, "%s", b)

	ids := map[string]string{}
	launch := func(name string) string {
		code, b := call("POST", api+"/api/v1/workspaces/launch", user, map[string]any{"name": name})
		require.Contains(t, []int{200, 201, 202}, code, "%s", b)
		var ws struct{ ID string }
		require.NoError(t, json.Unmarshal(b, &ws))
		ids[name] = ws.ID
		return fmt.Sprintf("http://localhost:%s/workspace-%s/", httpPort, name)
	}
	routed := func(url string) bool { c, _ := call("GET", url, user, nil); return c == 200 }

	first := launch("composetest--one")
	eventually(t, 60*time.Second, "first workspace through the compose Traefik", func() bool { return routed(first) })

	// Only the provisioner holds the Docker socket.
	list, err := cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
	require.NoError(t, err)
	require.Len(t, list, 6)
	for _, c := range list {
		holds := false
		for _, m := range c.Mounts {
			holds = holds || strings.Contains(m.Source, "docker.sock")
		}
		assert.Equal(t, c.Labels["com.docker.compose.service"] == "provisioner", holds, "socket in %s", c.Labels["com.docker.compose.service"])
	}

	// Every service container is hardened; only the provisioner (the socket)
	// and NATS (root-owned volumes, see compose.yaml) run as uid 0, and
	// without capabilities.
	for _, c := range list {
		info, err := cli.ContainerInspect(context.Background(), c.ID)
		require.NoError(t, err)
		svc := c.Labels["com.docker.compose.service"]
		assert.Contains(t, info.HostConfig.CapDrop, "ALL", "%s keeps capabilities", svc)
		assert.Empty(t, info.HostConfig.CapAdd, "%s adds capabilities", svc)
		assert.True(t, info.HostConfig.ReadonlyRootfs, "%s has a writable root filesystem", svc)
		assert.Contains(t, info.HostConfig.SecurityOpt, "no-new-privileges:true", "%s may gain privileges", svc)
		assert.False(t, info.HostConfig.Privileged, "%s is privileged", svc)
		if svc != "provisioner" && svc != "nats" {
			assert.NotContains(t, []string{"", "0", "0:0", "root"}, info.Config.User, "%s runs as root", svc)
		}
	}

	// The bus lets in only Berth's identities.
	if nc, err := nats.Connect("nats://127.0.0.1:"+natsPort, nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Error("NATS let in a client without credentials")
	}
	nc, err := nats.Connect("nats://127.0.0.1:"+natsPort, nats.UserInfo("ops", passwords["ops"]))
	require.NoError(t, err, "the ops identity")
	nc.Close()

	// Isolation: from a container on the workspace network (a hostile
	// workspace), neither composetest--one nor any Berth service answers.
	isolated(t, cli, ids["composetest--one"], list)

	// The reaper container stops a workspace idle past its timeout; the
	// history says why.
	idle := launch("composetest--idle")
	eventually(t, 60*time.Second, "idle workspace routed", func() bool { return routed(idle) })
	code, b = call("PATCH", api+"/api/v1/workspaces/"+ids["composetest--idle"]+"/lifecycle", user, map[string]any{"idle_timeout_seconds": 2})
	require.Equal(t, 200, code, "%s", b)
	eventually(t, 30*time.Second, "reaper stops the idle workspace", func() bool { c, _ := call("GET", idle, user, nil); return c == 404 })
	_, b = call("GET", api+"/api/v1/workspaces/"+ids["composetest--idle"]+"/events", user, nil)
	assert.Contains(t, string(b), `"actor":"service:reaper:`)
	assert.Contains(t, string(b), `"reason":"idle"`)

	// Stop: the route goes away.
	stopped := launch("composetest--stop")
	eventually(t, 60*time.Second, "workspace to stop is routed", func() bool { return routed(stopped) })
	code, b = call("POST", api+"/api/v1/workspaces/"+ids["composetest--stop"]+"/stop", user, nil)
	require.Equal(t, 202, code, "%s", b)
	eventually(t, 10*time.Second, "stopped workspace loses its route", func() bool { c, _ := call("GET", stopped, user, nil); return c == 404 })

	// A launch in flight while the provisioner restarts still completes, once.
	second := launch("composetest--two")
	s.compose("restart", "provisioner")
	eventually(t, 90*time.Second, "launch completes across a provisioner restart", func() bool { return routed(second) })
	byName, err := cli.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.name=composetest--two"))})
	require.NoError(t, err)
	assert.Len(t, byName, 1)

	// NATS restarts: acknowledged events survive, the services reconnect.
	// While the bus is down the API answers 503, which clients retry.
	s.compose("restart", "nats")
	eventually(t, 60*time.Second, "launch accepted after a NATS restart", func() bool {
		code, body := call("POST", api+"/api/v1/workspaces/launch", user, map[string]any{"name": "composetest--three"})
		if code < 200 || code >= 300 {
			t.Logf("launch after NATS restart: %d %s", code, body)
		}
		return code >= 200 && code < 300
	})
	third := launch("composetest--three")
	eventually(t, 90*time.Second, "launch after a NATS restart", func() bool { return routed(third) })
	_, listed := call("GET", api+"/api/v1/workspaces", user, nil)
	for _, n := range []string{"composetest--one", "composetest--two", "composetest--three"} {
		assert.Contains(t, string(listed), `"`+n+`"`)
	}

	// down then up: every running workspace's route comes back by itself;
	// the stopped one stays stopped.
	s.compose("down")
	s.compose("up", "-d")
	for _, u := range []string{first, second, third} {
		eventually(t, 90*time.Second, "route back after down/up: "+u, func() bool { return routed(u) })
	}
	c, _ := call("GET", stopped, user, nil)
	assert.Equal(t, 404, c, "a stopped workspace is not routed after down/up")
}

// isolated checks, from a container on the workspace network, that the
// workspace id and every service container (and the host's published
// ports) are out of reach.
func isolated(t *testing.T, cli *client.Client, id string, services []container.Summary) {
	t.Helper()
	ctx := context.Background()
	byID, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.id="+id))})
	require.NoError(t, err)
	require.Len(t, byID, 1)
	info, err := cli.ContainerInspect(ctx, byID[0].ID)
	require.NoError(t, err)
	ws := info.NetworkSettings.Networks["berth-workspaces"]
	require.NotNil(t, ws, "workspace on berth-workspaces")
	nw, err := cli.NetworkInspect(ctx, "berth-workspaces", network.InspectOptions{})
	require.NoError(t, err)
	gateway := nw.IPAM.Config[0].Gateway
	targets := []string{
		"http://" + ws.IPAddress + ":8080/healthz",
		"http://" + strings.TrimPrefix(info.Name, "/") + ":8080/healthz",
		"http://" + gateway + ":" + apiPort + "/healthz",
		"http://" + gateway + ":" + httpPort + "/",
		"http://" + gateway + ":" + provisionerPort + "/healthz",
		"http://" + gateway + ":" + pingPort + "/ping",
		"http://" + gateway + ":" + natsPort + "/",
	}
	ports := map[string]string{"api": "8080", "router-sync": "8082", "reaper": "8083", "nats": "8222"}
	for _, c := range services {
		port, ok := ports[c.Labels["com.docker.compose.service"]]
		if !ok || c.NetworkSettings == nil {
			continue
		}
		for _, n := range c.NetworkSettings.Networks {
			if n.IPAddress != "" {
				targets = append(targets, "http://"+n.IPAddress+":"+port+"/healthz")
			}
		}
	}
	for _, url := range targets {
		ok, out := dockertest.ProbeFrom(t, cli, "berth-workspaces", url)
		assert.False(t, ok, "a workspace reached %s: %s", url, out)
	}
}
