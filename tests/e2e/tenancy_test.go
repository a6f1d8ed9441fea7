package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/dockertest"
)

// fromWorkspace GETs url from the workspace network, as a hostile
// workspace would, and reports whether it got through.
func (s *stack) fromWorkspace(url string) (bool, string) {
	s.t.Helper()
	return dockertest.ProbeFrom(s.t, s.cli, s.network, url)
}

// TestWorkspacesAreIsolated (make run shape): a workspace reaches no other
// workspace by address or by name, and none of Berth's services; the only
// way to another workspace is its URL through Traefik, where forwardAuth
// answers 403. On the old shared bridge, bob's container read alice's
// workspace directly.
func TestWorkspacesAreIsolated(t *testing.T) {
	s := newStack(t)
	s.addDemoImage()
	alice, bob := s.token("alice", "user"), s.token("bob", "user")
	a := s.launch(alice)
	s.await(alice, a.ID, "running", 30*time.Second)
	ctx := context.Background()
	list, err := s.cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.id="+a.ID))})
	require.NoError(t, err)
	require.Len(t, list, 1)
	info, err := s.cli.ContainerInspect(ctx, list[0].ID)
	require.NoError(t, err)
	ip := info.NetworkSettings.Networks[s.network].IPAddress
	name := strings.TrimPrefix(info.Name, "/")

	// Berth itself (the host) reaches it: that is how Traefik and the
	// health check work in this shape.
	code, _ := get(t, "http://"+ip+":8080/healthz", "")
	require.Equal(t, 200, code)

	for _, url := range []string{"http://" + ip + ":8080/healthz", "http://" + name + ":8080/healthz"} {
		ok, out := s.fromWorkspace(url)
		assert.False(t, ok, "a workspace reached %s: %s", url, out)
	}
	nw, err := s.cli.NetworkInspect(ctx, s.network, network.InspectOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, nw.IPAM.Config)
	gateway := nw.IPAM.Config[0].Gateway
	for svc, addr := range map[string]string{"api": s.api, "traefik": s.web, "router-sync": s.router, "provisioner": s.provAddr, "nats": s.natsAddr} {
		_, port, _ := net.SplitHostPort(addr)
		url := "http://" + net.JoinHostPort(gateway, port) + "/healthz"
		ok, out := s.fromWorkspace(url)
		assert.False(t, ok, "a workspace reached the %s at %s: %s", svc, url, out)
	}
	code, _ = get(t, a.URL, bob)
	assert.Equal(t, 403, code, "through Traefik, bob is refused alice's workspace")

	// The bus asks for credentials: a client without them is refused.
	if nc, err := nats.Connect("nats://"+s.natsAddr, nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Error("the embedded NATS let in a client without credentials")
	}

	// Dev tokens are for this machine's own clients: Traefik's /api/
	// route leaves the dev-token route out (it answered anyone before).
	status, body, _ := call(t, "POST", "http://"+s.web+"/api/v1/dev/token", "", map[string]any{"sub": "root", "roles": []string{"admin"}})
	assert.Equal(t, 404, status, "dev token through Traefik: %s", body)
	status, _, _ = call(t, "GET", "http://"+s.web+"/api/v1/openapi.yaml", "", nil)
	assert.Equal(t, 200, status, "the rest of the API is still routed")
}
