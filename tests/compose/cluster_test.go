package compose

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
)

// TestComposeCluster: the compose stack on a three-node NATS cluster
// (compose.cluster.yaml). Every stream and bucket has three replicas; a
// workspace launches through Traefik; with one node stopped Berth goes on:
// the running workspace stays routed and a new one launches.
func TestComposeCluster(t *testing.T) {
	const web, apiPort, natsPort = "28000", "28080", "24222"
	s, passwords := newStack(t, "berth-composecluster", []string{"compose.yaml", "compose.cluster.yaml"},
		ports{web: web, api: apiPort, nats: natsPort, nats2: "24223", nats3: "24224", provisioner: "28081", ping: "28090"}, "clustertest")
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

	admin, user := devToken(t, base, "root", "admin"), devToken(t, base, "clustertest", "user")
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
