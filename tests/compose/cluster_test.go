package compose

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/dockertest"
	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// TestComposeCluster: the compose stack on a three-node NATS cluster
// (compose.cluster.yaml). Every stream and bucket has three replicas; a
// workspace launches through Traefik; with one node stopped Berth goes on:
// the running workspace stays routed and a new one launches.
func TestComposeCluster(t *testing.T) {
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

	const web, apiPort, natsPort = "28000", "28080", "24222"
	passwords, err := natsbus.EnsurePasswords(t.TempDir())
	require.NoError(t, err)
	s := &stack{t: t, root: root, project: "berth-composecluster", files: []string{"compose.yaml", "compose.cluster.yaml"}, env: []string{
		"BERTH_NATS_IMAGE=berth/nats:local", "BERTH_TRAEFIK_IMAGE=berth/traefik:local",
		"BERTH_PROJECTS_ROOT=" + t.TempDir(), "BERTH_DEV_TOKENS=true",
		"BERTH_HTTP_PORT=" + web, "BERTH_API_PORT=" + apiPort, "BERTH_NATS_PORT=" + natsPort, "BERTH_NATS2_PORT=24223", "BERTH_NATS3_PORT=24224",
		"BERTH_PROVISIONER_PORT=28081", "BERTH_TRAEFIK_PING_PORT=28090",
		"BERTH_NATS_API_PASSWORD=" + passwords["api"], "BERTH_NATS_PROVISIONER_PASSWORD=" + passwords["provisioner"],
		"BERTH_NATS_ROUTER_SYNC_PASSWORD=" + passwords["router-sync"], "BERTH_NATS_REAPER_PASSWORD=" + passwords["reaper"],
		"BERTH_NATS_OPS_PASSWORD=" + passwords["ops"], "BERTH_NATS_INTAKE_PASSWORD=" + passwords["intake"],
		"BERTH_PUBLIC_URL=http://localhost:" + web,
	}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(s.compose("logs", "--tail=40"))
		}
		s.compose("down", "-v")
		list, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.owner=clustertest"))})
		for _, c := range list {
			_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
			_ = cli.VolumeRemove(context.Background(), "berth-home-"+c.Labels["berth.workspace.id"], true)
		}
	})
	start := time.Now()
	s.compose("up", "-d")
	base := "http://localhost:" + apiPort
	eventually(t, 180*time.Second, "api ready on the cluster", func() bool { c, _ := call("GET", base+"/readyz", "", nil); return c == 200 })
	t.Logf("cold up of the cluster stack: %s", time.Since(start))

	// Three replicas of everything, from the one setting.
	nc, err := nats.Connect("nats://127.0.0.1:"+natsPort, nats.UserInfo("ops", passwords["ops"]))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	streams := 0
	for info := range js.ListStreams(ctx).Info() {
		streams++
		assert.Equal(t, 3, info.Config.Replicas, "stream %s", info.Config.Name)
	}
	require.Positive(t, streams)

	token := func(sub, role string) string {
		_, b := call("POST", base+"/api/v1/dev/token", "", map[string]any{"sub": sub, "roles": []string{role}})
		var out struct{ Token string }
		require.NoError(t, json.Unmarshal(b, &out), "%s", b)
		return out.Token
	}
	admin, user := token("root", "admin"), token("clustertest", "user")
	code, b := call("POST", base+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Contains(t, []int{201, 409}, code, "%s", b)
	launch := func(name string) string {
		code, b := call("POST", base+"/api/v1/workspaces/launch", user, map[string]any{"name": name})
		require.Contains(t, []int{200, 201, 202}, code, "%s", b)
		return fmt.Sprintf("http://localhost:%s/workspace-%s/", web, name)
	}
	routed := func(url string) bool { c, _ := call("GET", url, user, nil); return c == 200 }
	first := launch("clustertest--one")
	eventually(t, 90*time.Second, "a workspace through Traefik on the cluster", func() bool { return routed(first) })

	s.compose("stop", "nats3")
	assert.True(t, routed(first), "the running workspace stays routed with a node down")
	second := launch("clustertest--two")
	eventually(t, 90*time.Second, "a launch with one of three nodes down", func() bool { return routed(second) })
	_, err = js.Stream(ctx, events.Stream)
	assert.NoError(t, err, "the log answers with a node down")
}
