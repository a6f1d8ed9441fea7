package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/dockertest"
)

// useSwarm makes the engine a single-node Swarm manager for the test and
// leaves it as it found it: a swarm it initialised is left again; an
// existing swarm whose manager it is, is used and kept. A worker or a
// half-joined node skips the test (nothing to create services with).
func useSwarm(t *testing.T, cli *client.Client) {
	ctx := context.Background()
	info, err := cli.Info(ctx)
	require.NoError(t, err)
	switch info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateInactive:
		// Swarm mode makes docker_gwbridge, and leaving keeps it.
		_, gwErr := cli.NetworkInspect(ctx, "docker_gwbridge", network.InspectOptions{})
		_, err := cli.SwarmInit(ctx, swarm.InitRequest{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"})
		require.NoError(t, err, "docker swarm init")
		t.Cleanup(func() {
			if err := cli.SwarmLeave(context.Background(), true); err != nil {
				t.Errorf("leave the swarm this test made: %v (run: docker swarm leave --force)", err)
			}
			if cerrdefs.IsNotFound(gwErr) {
				if err := cli.NetworkRemove(context.Background(), "docker_gwbridge"); err != nil && !cerrdefs.IsNotFound(err) {
					t.Errorf("remove docker_gwbridge, which swarm mode made: %v", err)
				}
			}
		})
	case swarm.LocalNodeStateActive:
		if !info.Swarm.ControlAvailable {
			t.Skip("skipping: this engine is a Swarm worker; the Swarm runtime needs a manager")
		}
	default:
		t.Skipf("skipping: the engine's Swarm state is %q; the test needs an inactive engine or a manager", info.Swarm.LocalNodeState)
	}
}

// TestSwarmThroughTraefik is the Swarm runtime's end-to-end test: a
// workspace is a one-replica service on an overlay network of its own,
// launched through the API, served through Traefik (200), stopped (404,
// the service kept at 0 replicas and pinned to its volume's node), started
// again with its home intact, and deleted (service, network and volume
// gone). A second workspace cannot reach the first across the overlays.
//
// The provisioner and Traefik run as containers, as they would on a
// manager node: both must join every workspace network. The API and
// router-sync run on the host, reached over a bridge network the test
// makes.
func TestSwarmThroughTraefik(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.EnsureImages(t, cli)
	useSwarm(t, cli)
	ctx := context.Background()
	root := repoRoot(t)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	tag := hex.EncodeToString(suffix)
	inst := "e2e-swarm-" + tag

	s := &stack{t: t, root: root, dir: t.TempDir(), procs: map[string]*proc{}, cli: cli}
	s.bin = filepath.Join(s.dir, "bin")
	build := exec.Command("go", "build", "-o", s.bin+"/", "./services/api", "./services/router-sync")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build services: %s", out)
	provImage := provisionerImage(t, cli, root, tag)

	// The bridge the containers reach the host's API and NATS through.
	bridge := "berth-e2e-swarm-" + tag
	_, err = cli.NetworkCreate(ctx, bridge, network.CreateOptions{Driver: "bridge"})
	require.NoError(t, err)
	nw, err := cli.NetworkInspect(ctx, bridge, network.InspectOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, nw.IPAM.Config)
	gw := nw.IPAM.Config[0].Gateway
	prov, traefik := "berth-e2e-swarm-provisioner-"+tag, "berth-e2e-swarm-traefik-"+tag
	s.network = bridge
	t.Cleanup(s.stopAll)
	t.Cleanup(func() { cleanSwarm(t, cli, inst, bridge, provImage, prov, traefik) })

	// The API and its NATS listen on loopback, as under `make run`; the
	// containers reach them through forwarders on the bridge's gateway.
	s.api, s.natsAddr, s.router, s.web = freePort(t), freePort(t), freePort(t), freePort(t)
	apiGW, natsGW := forward(t, gw, s.api), forward(t, gw, s.natsAddr)
	s.dynamic = filepath.Join(s.dir, "dynamic")
	require.NoError(t, os.MkdirAll(s.dynamic, 0o755))
	common := []string{"BERTH_LOG_LEVEL=info", "BERTH_PUBLIC_URL=http://" + s.web, "BERTH_API_RATE=0", "BERTH_INSTALLATION=" + inst}
	s.start("api", filepath.Join(s.bin, "api"), nil, append(slices.Clone(common), "BERTH_HTTP_ADDR="+s.api, "BERTH_NATS_LISTEN="+s.natsAddr,
		"BERTH_DATA_DIR="+filepath.Join(s.dir, "data"), "BERTH_DEV_TOKENS=true"))
	s.waitReady("http://" + s.api + "/readyz")
	s.start("router-sync", filepath.Join(s.bin, "router-sync"), nil, append(slices.Clone(common), "BERTH_NATS_URL=nats://"+s.natsAddr,
		"BERTH_ROUTER_HTTP_ADDR="+s.router, "BERTH_TRAEFIK_DYNAMIC_DIR="+s.dynamic,
		"BERTH_AUTH_URL=http://"+apiGW+"/api/v1/auth/forward", "BERTH_ROUTE_API_URL=http://"+s.api))
	s.waitReady("http://" + s.router + "/readyz")

	_, webPort, _ := strings.Cut(s.web, ":")
	run(t, cli, traefik, &container.Config{Image: "berth/traefik:local", User: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		ExposedPorts: nat.PortSet{"8000/tcp": {}},
		Cmd: []string{"--entrypoints.web.address=:8000", "--providers.providersThrottleDuration=10ms",
			"--providers.file.directory=/dynamic", "--providers.file.watch=true", "--log.level=WARN",
			"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"}},
		&container.HostConfig{NetworkMode: container.NetworkMode(bridge), Binds: []string{s.dynamic + ":/dynamic:ro"},
			PortBindings: nat.PortMap{"8000/tcp": {{HostIP: "127.0.0.1", HostPort: webPort}}}})
	run(t, cli, prov, &container.Config{Image: provImage, User: "0:0", Env: append(slices.Clone(common),
		"BERTH_RUNTIME=swarm", "BERTH_SWARM_ATTACH="+prov+","+traefik, "BERTH_NATS_URL=nats://"+natsGW,
		"BERTH_NATS_PASSWORD_FILE=/run/nats.password", "BERTH_PROVISIONER_HTTP_ADDR=0.0.0.0:8081",
		"BERTH_ARCHIVE_DIR=/data/archives", "BERTH_PROJECTS_ROOT=/data/projects", "BERTH_STOP_TIMEOUT=2s",
		"BERTH_RECONCILE_INTERVAL=1s", "BERTH_ORPHAN_GRACE=1s", "BERTH_SWARM_PLACEMENT_TIMEOUT=3s")},
		&container.HostConfig{NetworkMode: container.NetworkMode(bridge), Tmpfs: map[string]string{"/data": ""},
			Binds: []string{"/var/run/docker.sock:/var/run/docker.sock",
				filepath.Join(s.dir, "data", "nats-users", "provisioner.password") + ":/run/nats.password:ro"}})
	info, err := cli.ContainerInspect(ctx, prov)
	require.NoError(t, err)
	s.provAddr = info.NetworkSettings.Networks[bridge].IPAddress + ":8081"
	s.waitReady("http://" + s.provAddr + "/readyz")

	// Services labelled as workspaces that the log does not know: this
	// installation's is an orphan and goes; another installation's stays.
	mine, theirs := ghostService(t, cli, inst, "ghost-"+tag), ghostService(t, cli, "other-"+tag, "ghost2-"+tag)
	s.addDemoImage()
	alice, bob := s.token("alice", "user"), s.token("bob", "user")
	began := time.Now()
	ws := s.launch(alice)
	s.await(alice, ws.ID, "running", 60*time.Second)
	t.Logf("launch → running (Swarm, first start): %s", time.Since(began))
	d := until(t, 20*time.Second, "alice's workspace through Traefik", func() bool {
		status, _ := get(t, s.url(ws.Name), alice)
		return status == http.StatusOK
	})
	t.Logf("running → first 200 through Traefik: %s", d)

	svc := swarmService(t, cli, inst, ws.ID)
	require.Equal(t, uint64(1), *svc.Spec.Mode.Replicated.Replicas)
	require.Equal(t, swarm.RestartPolicyConditionNone, svc.Spec.TaskTemplate.RestartPolicy.Condition, "the reconciler, not Swarm, restarts")
	spec := svc.Spec.TaskTemplate.ContainerSpec
	require.Equal(t, []string{"ALL"}, spec.CapabilityDrop)
	task := runningTask(t, cli, svc.ID)
	tc, err := cli.ContainerInspect(ctx, task.Status.ContainerStatus.ContainerID)
	require.NoError(t, err)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tc.State.Pid))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^Uid:\s+[1-9]`, string(status), "the workspace's process never runs as root")
	require.Equal(t, []string{"ALL"}, []string(tc.HostConfig.CapDrop))
	if versions.GreaterThanOrEqualTo(cli.ClientVersion(), "1.46") {
		require.Contains(t, tc.HostConfig.SecurityOpt, "no-new-privileges:true")
	} else {
		t.Logf("engine API %s: no-new-privileges for services needs 1.46 (docs/scale.md)", cli.ClientVersion())
	}
	require.NotZero(t, svc.Spec.TaskTemplate.Resources.Limits.MemoryBytes)
	require.NotZero(t, svc.Spec.TaskTemplate.Resources.Limits.Pids)
	require.Equal(t, "json-file", tc.HostConfig.LogConfig.Type, "the service's log is rotated like a container's")
	require.NotEmpty(t, tc.HostConfig.LogConfig.Config["max-size"])
	overlay, err := cli.NetworkInspect(ctx, svc.Spec.TaskTemplate.Networks[0].Target, network.InspectOptions{})
	require.NoError(t, err)
	require.Equal(t, "overlay", overlay.Driver)
	require.Equal(t, ws.ID, overlay.Labels["berth.workspace.id"], "a network of its own")
	saveFile(t, s.url(ws.Name), alice, "notes.txt", "kept across a stop")

	// Another user's workspace, on its own overlay: it cannot reach
	// alice's. A container on bob's network stands in for bob's workspace;
	// one on alice's network shows the probe itself works.
	other := s.launch(bob)
	s.await(bob, other.ID, "running", 60*time.Second)
	aliceIP := ""
	for _, a := range task.NetworksAttachments {
		if a.Network.ID == overlay.ID {
			aliceIP = strings.Split(a.Addresses[0], "/")[0]
		}
	}
	bobNet := swarmService(t, cli, inst, other.ID).Spec.TaskTemplate.Networks[0].Target
	require.NotEqual(t, overlay.ID, bobNet)
	target := "http://" + aliceIP + ":8080/healthz"
	ok, outp := dockertest.ProbeFrom(t, cli, overlay.ID, target)
	require.True(t, ok, "control: a container on alice's network reaches her workspace: %s", outp)
	ok, outp = dockertest.ProbeFrom(t, cli, bobNet, target)
	require.False(t, ok, "bob's network reaches alice's workspace: %s", outp)

	// A task that dies is not restarted by Swarm (restart condition none)
	// but by the reconciler, which checks the spec again first.
	require.NoError(t, cli.ContainerKill(ctx, task.Status.ContainerStatus.ContainerID, "KILL"))
	until(t, 30*time.Second, "alice's workspace back after its task was killed", func() bool {
		status, body := get(t, s.url(ws.Name)+"files/notes.txt", alice)
		return status == http.StatusOK && strings.Contains(body, "kept across a stop")
	})
	until(t, 10*time.Second, "the orphan service removed", func() bool {
		_, _, err := cli.ServiceInspectWithRaw(ctx, mine, swarm.ServiceInspectOptions{})
		return cerrdefs.IsNotFound(err)
	})
	_, _, err = cli.ServiceInspectWithRaw(ctx, theirs, swarm.ServiceInspectOptions{})
	require.NoError(t, err, "another installation's service is never touched")

	s.lifecycle(alice, ws.ID, "stop")
	s.await(alice, ws.ID, "stopped", 60*time.Second)
	until(t, 10*time.Second, "404 after the stop", func() bool {
		status, _ := get(t, s.url(ws.Name), alice)
		return status == http.StatusNotFound
	})
	svc = swarmService(t, cli, inst, ws.ID)
	require.Equal(t, uint64(0), *svc.Spec.Mode.Replicated.Replicas, "stop scales to 0; the service stays")
	node, err := cli.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"node.id==" + node.Swarm.NodeID}, svc.Spec.TaskTemplate.Placement.Constraints, "pinned to the node holding its home volume")

	began = time.Now()
	s.lifecycle(alice, ws.ID, "start")
	s.await(alice, ws.ID, "running", 60*time.Second)
	t.Logf("start → running (Swarm, scaled from 0): %s", time.Since(began))
	until(t, 20*time.Second, "200 after the start", func() bool {
		status, body := get(t, s.url(ws.Name)+"files/notes.txt", alice)
		return status == http.StatusOK && strings.Contains(body, "kept across a stop")
	})
	require.Equal(t, svc.ID, swarmService(t, cli, inst, ws.ID).ID, "the same service, started again")

	// The node holding the home volume is gone (a constraint no node
	// meets stands in for it): the start fails with a reason, not forever.
	s.lifecycle(alice, ws.ID, "stop")
	s.await(alice, ws.ID, "stopped", 60*time.Second)
	svc = swarmService(t, cli, inst, ws.ID)
	svc.Spec.TaskTemplate.Placement.Constraints = []string{"node.id==gone0000000000000000000000"}
	_, err = cli.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{})
	require.NoError(t, err)
	s.lifecycle(alice, ws.ID, "start")
	s.await(alice, ws.ID, "error", 60*time.Second)
	_, b, _ := call(t, "GET", "http://"+s.api+"/api/v1/workspaces/"+ws.ID, alice, nil)
	require.Contains(t, string(b), "node_unavailable")

	st, b, _ := call(t, "DELETE", "http://"+s.api+"/api/v1/workspaces/"+ws.ID+"?purge=true", alice, nil)
	require.Equal(t, http.StatusAccepted, st, "%s", b)
	s.await(alice, ws.ID, "deleted", 60*time.Second)
	until(t, 10*time.Second, "404 after the delete", func() bool {
		status, _ := get(t, s.url(ws.Name), alice)
		return status == http.StatusNotFound
	})
	until(t, 30*time.Second, "service, network and home volume removed", func() bool {
		svcs, _ := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.id="+ws.ID))})
		_, nerr := cli.NetworkInspect(ctx, overlay.ID, network.InspectOptions{})
		_, verr := cli.VolumeInspect(ctx, "berth-home-"+ws.ID)
		return len(svcs) == 0 && cerrdefs.IsNotFound(nerr) && cerrdefs.IsNotFound(verr)
	})
}

// forward listens on host:0 and copies each connection to and from to,
// until the test ends; it returns the address it listens on.
func forward(t *testing.T, host, to string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.Close() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return ln.Addr().String()
}

// provisionerImage builds the provisioner of this checkout into a FROM
// scratch image (the one `make images` built may be older).
func provisionerImage(t *testing.T, cli *client.Client, root, tag string) string {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "service"), "./services/provisioner")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build provisioner: %s", out)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY service /service\nENTRYPOINT [\"/service\"]\n"), 0o644))
	ref := "berth/provisioner-e2e-swarm:" + tag
	out, err = exec.Command("docker", "build", "-q", "-t", ref, dir).CombinedOutput()
	require.NoError(t, err, "docker build: %s", out)
	return ref
}

// run creates and starts a named container.
func run(t *testing.T, cli *client.Client, name string, cfg *container.Config, hc *container.HostConfig) {
	ctx := context.Background()
	c, err := cli.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	require.NoError(t, err, "create %s", name)
	require.NoError(t, cli.ContainerStart(ctx, c.ID, container.StartOptions{}), "start %s", name)
}

func swarmService(t *testing.T, cli *client.Client, inst, id string) swarm.Service {
	t.Helper()
	svcs, err := cli.ServiceList(context.Background(), swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "berth.workspace.id="+id), filters.Arg("label", "berth.installation="+inst))})
	require.NoError(t, err)
	require.Len(t, svcs, 1, "one service per workspace")
	return svcs[0]
}

// ghostService makes a service labelled as workspace id of installation
// inst, at 0 replicas, and returns its id.
func ghostService(t *testing.T, cli *client.Client, inst, id string) string {
	zero := uint64(0)
	labels := map[string]string{"berth.workspace.id": id, "berth.installation": inst, "berth.managed": "true"}
	res, err := cli.ServiceCreate(context.Background(), swarm.ServiceSpec{Annotations: swarm.Annotations{Name: "berth-" + id, Labels: labels},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: dockertest.DemoImage}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &zero}}}, swarm.ServiceCreateOptions{})
	require.NoError(t, err)
	return res.ID
}

func runningTask(t *testing.T, cli *client.Client, sid string) swarm.Task {
	t.Helper()
	tasks, err := cli.TaskList(context.Background(), swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", sid), filters.Arg("desired-state", "running"))})
	require.NoError(t, err)
	for _, task := range tasks {
		if task.Status.State == swarm.TaskStateRunning {
			return task
		}
	}
	t.Fatalf("service %s has no running task", sid)
	return swarm.Task{}
}

// cleanSwarm removes what the test made, whatever state it stopped in
// (before the swarm itself is left, if the test made it).
func cleanSwarm(t *testing.T, cli *client.Client, inst, bridge, img string, containers ...string) {
	ctx := context.Background()
	if t.Failed() {
		for _, c := range containers {
			if rc, err := cli.ContainerLogs(ctx, c, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "60"}); err == nil {
				b := new(strings.Builder)
				_, _ = stdcopy.StdCopy(b, b, rc)
				rc.Close()
				t.Logf("--- %s log ---\n%s", c, b)
			}
		}
	}
	for _, c := range containers {
		_ = cli.ContainerRemove(ctx, c, container.RemoveOptions{Force: true})
	}
	byInst := filters.NewArgs(filters.Arg("label", "berth.installation="+inst))
	svcs, _ := cli.ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("name", "berth-"))})
	for _, svc := range svcs {
		if l := svc.Spec.Labels["berth.installation"]; l == inst || strings.HasSuffix(svc.Spec.Name, inst[len("e2e-swarm-"):]) {
			_ = cli.ServiceRemove(ctx, svc.ID)
		}
	}
	// Task containers go a moment after their services; they hold volumes.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		list, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: byInst})
		if len(list) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	nets, _ := cli.NetworkList(ctx, network.ListOptions{Filters: byInst})
	for _, n := range nets {
		_ = cli.NetworkRemove(ctx, n.ID)
	}
	vols, _ := cli.VolumeList(ctx, volume.ListOptions{Filters: byInst})
	for _, v := range vols.Volumes {
		_ = cli.VolumeRemove(ctx, v.Name, true)
	}
	_ = cli.NetworkRemove(ctx, bridge)
	_, _ = cli.ImageRemove(ctx, img, image.RemoveOptions{Force: true, PruneChildren: true})
}
