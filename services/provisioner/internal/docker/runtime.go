// Package docker is the provisioner's runtime on a single Docker Engine:
// one labelled container per workspace on a dedicated network, a named
// volume for its home, hardened by default.
package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	dockerevents "github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/provisioner/internal/app"
)

// Labels Berth puts on what it creates. Only objects with LabelID are ever
// touched by the provisioner.
const (
	LabelID      = "berth.workspace.id"
	LabelName    = "berth.workspace.name"
	LabelOwner   = "berth.workspace.owner"
	LabelManaged = "berth.managed"
	// LabelInstallation scopes everything to one installation: another
	// installation's containers on the same engine are never listed,
	// adopted, stopped or removed.
	LabelInstallation = "berth.installation"
	// LabelSpec is the hash of the spec that shaped the container; a start
	// with another spec replaces the container (the home volume stays).
	LabelSpec = "berth.spec"
)

// Options configure the runtime.
type Options struct {
	// Installation is this installation's id (see LabelInstallation and
	// Scoped); everything but Ping and Events needs it.
	Installation string
	Network      string // dedicated workspace network
	// NoOutbound makes the workspace network internal: workspaces reach
	// nothing outside it (no git clone, no package installs).
	NoOutbound    bool
	Port          int           // port the IDE listens on in the container
	HealthPath    string        // HTTP path answering 200 when ready
	HealthTimeout time.Duration // how long a start may take
	StopTimeout   time.Duration // grace before SIGKILL on stop
	HomeDir       string        // mount point of the home volume
	// DefaultUser runs images whose own user is root (or unset).
	DefaultUser string
	// LogMaxBytes and LogMaxFiles rotate every workspace container's log:
	// a workspace printing without pause holds at most LogMaxFiles ×
	// LogMaxBytes of log on the engine's disk (the engine's default json-file
	// log grows without bound). Set on the container, so the engine's own
	// defaults do not matter.
	// Bytes, written to the engine in KiB, one spelling for every size: the
	// spec hash sees the same string for the same size whoever set it.
	LogMaxBytes int64
	LogMaxFiles int
	// DiskBusyWait bounds the retries of a disk-usage call the engine
	// refuses because another one runs (5 s if 0; see DiskUsage).
	DiskBusyWait time.Duration
	// noHardLimit: never ask the storage driver for a size limit (Swarm
	// services have no such option).
	noHardLimit bool
}

// LogDriver keeps workspace logs where `docker logs` and the logs service
// read them, rotated by the engine.
const LogDriver = "json-file"

// Runtime implements app.Runtime on the Docker Engine API.
type Runtime struct {
	cli  client.APIClient
	o    Options
	http *http.Client
	*engine
}

// engine is what every Runtime on one client shares (see Scoped).
type engine struct {
	// netMu serialises network creation: the engine's duplicate-name check
	// is not atomic, and concurrent creates make same-named networks.
	netMu sync.Mutex
	// The client negotiates its API version lazily and without locking, a
	// data race under concurrent first use; connect does it once, guarded.
	connMu    sync.Mutex
	connected atomic.Bool
	// The storage driver's size limit (StorageOpt size), once known: asked
	// of the engine's info at first use, and turned off for good if the
	// engine refuses it (overlay2 over xfs without pquota).
	limitMu    sync.Mutex
	limitKnown bool
	limitOK    bool
	// The last home-volume sizes measured, per installation: what the
	// disk watch uses while the engine refuses a disk-usage call.
	homeMu sync.Mutex
	homes  map[string]map[string]int64
}

// Scoped returns the runtime for one installation, sharing the client (the
// unscoped runtime can only Ping and watch Events: the installation id is
// read from the bus, which may come up after the engine).
func (r *Runtime) Scoped(installation string) *Runtime {
	c := *r
	c.o.Installation = installation
	return &c
}

// New returns a runtime; zero options get working defaults.
func New(cli client.APIClient, o Options) *Runtime {
	if o.Network == "" {
		o.Network = "berth-workspaces"
	}
	if o.Port == 0 {
		o.Port = 8080
	}
	if o.HealthPath == "" {
		o.HealthPath = "/healthz"
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = 60 * time.Second
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.HomeDir == "" {
		o.HomeDir = "/home/coder"
	}
	if o.DefaultUser == "" {
		o.DefaultUser = "1000:1000"
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 10 << 20
	}
	if o.LogMaxFiles == 0 {
		o.LogMaxFiles = 3
	}
	if o.DiskBusyWait <= 0 {
		o.DiskBusyWait = 5 * time.Second
	}
	// Probes never follow redirects: a workspace answering its health or
	// activity check with a redirect to the host's loopback would make the
	// provisioner (on the host's network) fetch it.
	probe := &http.Client{Timeout: 2 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Runtime{cli: cli, o: o, http: probe, engine: &engine{}}
}

// errUnscoped guards against acting without an installation id: the
// result would be objects no installation owns.
var errUnscoped = errors.New("docker runtime used without an installation id (use Scoped)")

// scoped is connect for entry points that create, find or remove objects.
func (r *Runtime) scoped(ctx context.Context) error {
	if r.o.Installation == "" {
		return errUnscoped
	}
	return r.connect(ctx)
}

// connect pings the engine and negotiates the API version once; every
// entry point calls it first.
func (r *Runtime) connect(ctx context.Context) error {
	if r.connected.Load() {
		return nil
	}
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.connected.Load() {
		return nil
	}
	if _, err := r.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker engine unreachable: %w", err)
	}
	r.cli.NegotiateAPIVersion(ctx)
	r.connected.Store(true)
	return nil
}

// Ping reports whether the engine answers (readiness).
func (r *Runtime) Ping(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	_, err := r.cli.Ping(ctx)
	return err
}

// Events streams engine events matching f (see client.Events).
func (r *Runtime) Events(ctx context.Context, f filters.Args) (<-chan dockerevents.Message, <-chan error) {
	if err := r.connect(ctx); err != nil {
		errs := make(chan error, 1)
		errs <- err
		return nil, errs
	}
	return r.cli.Events(ctx, dockerevents.ListOptions{Filters: f})
}

// ContainerName is the container's name, also its DNS name on the network.
func ContainerName(name, id string) string { return "berth-" + name + "-" + id[:8] }

// VolumeName is the name of the workspace's home volume.
func VolumeName(id string) string { return "berth-home-" + id }

// find returns the workspace's container, found by label, never by name.
// A container of the workspace made before installations were labelled
// (no installation label) is found too, so it is adopted once: its spec
// hash is missing, so the next start replaces it with a labelled one.
// Another installation's containers are never returned.
func (r *Runtime) find(ctx context.Context, id string) (*container.Summary, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelID+"="+id))})
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", id, err)
	}
	var legacy *container.Summary
	for i, c := range list {
		switch c.Labels[LabelInstallation] {
		case r.o.Installation:
			return &list[i], nil
		case "":
			legacy = &list[i]
		}
	}
	return legacy, nil
}

// labels are those of every object made for workspace s.
func (r *Runtime) labels(s app.Spec) map[string]string {
	return map[string]string{LabelID: s.ID, LabelName: s.Name, LabelOwner: s.Owner, LabelManaged: "true", LabelInstallation: r.o.Installation}
}

// EnsureRunning creates the container if absent, starts it and waits until
// it answers its health check.
func (r *Runtime) EnsureRunning(ctx context.Context, s app.Spec) (events.Running, error) {
	if err := r.scoped(ctx); err != nil {
		return events.Running{}, err
	}
	// A container another worker is creating shows in listings before the
	// engine can start it ("No such container"), and one being removed
	// shows until it is gone: look again instead of failing the start.
	// Before every start, not only on create: a reused container must not
	// run on a network that became unsafe (or was removed to be remade).
	if err := r.ensureNetwork(ctx); err != nil {
		return events.Running{}, err
	}
	for attempt := 1; ; attempt++ {
		cid, err := r.ensureCreated(ctx, s)
		if err != nil {
			return events.Running{}, err
		}
		err = r.cli.ContainerStart(ctx, cid, container.StartOptions{})
		if err == nil {
			return r.awaitHealthy(ctx, cid, s.Name, r.check(s), s.OnAddress)
		}
		if !cerrdefs.IsNotFound(err) || attempt == 20 {
			return events.Running{}, fmt.Errorf("start %s: %w", s.Name, err)
		}
		select {
		case <-ctx.Done():
			return events.Running{}, ctx.Err()
		case <-time.After(time.Duration(attempt) * 25 * time.Millisecond):
		}
	}
}

// EnsureCreated makes the workspace's container (and home volume) without
// starting it, so a later start only starts it: a workspace defined ahead
// of use (an admin's, an LMS's) then launches as fast as a restart.
func (r *Runtime) EnsureCreated(ctx context.Context, s app.Spec) error {
	if err := r.scoped(ctx); err != nil {
		return err
	}
	if err := r.ensureNetwork(ctx); err != nil {
		return err
	}
	_, err := r.ensureCreated(ctx, s)
	return err
}

// ensureCreated returns the workspace's container, creating it if absent
// and replacing it if it was made from another spec (a changed image,
// project list, limit or setting): the container always matches the log.
func (r *Runtime) ensureCreated(ctx context.Context, s app.Spec) (string, error) {
	c, err := r.find(ctx, s.ID)
	if err != nil {
		return "", err
	}
	shape, err := r.shape(ctx, s)
	if err != nil {
		return "", err
	}
	if c != nil {
		if c.Labels[LabelSpec] == shape.hash {
			return c.ID, nil // adopt: never a second container
		}
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("replace container of %s (spec changed): %w", s.Name, err)
		}
	}
	cid, err := r.create(ctx, s, shape)
	if err != nil && shape.host.StorageOpt != nil && storageOptRefused(err) {
		// The driver looked able to limit sizes but is not (xfs without
		// pquota): go on without the hard limit; the disk watch still
		// measures and stops.
		r.disableHardLimit()
		if shape, err = r.shape(ctx, s); err != nil {
			return "", err
		}
		cid, err = r.create(ctx, s, shape)
	}
	if cerrdefs.IsConflict(err) {
		// Another worker created it a moment ago: the deterministic name
		// makes a second container impossible; adopt the winner's.
		return r.awaitCreated(ctx, s.ID)
	}
	return cid, err
}

// awaitCreated finds a container another worker is creating: the engine
// reserves the name before the container shows up in listings.
func (r *Runtime) awaitCreated(ctx context.Context, id string) (string, error) {
	for range 100 {
		c, err := r.find(ctx, id)
		if err != nil {
			return "", err
		}
		if c != nil {
			return c.ID, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("container of %s holds its name but never appeared", id)
}

// shape is everything a container is made from, and its hash.
type shape struct {
	cfg  *container.Config
	host *container.HostConfig
	hash string
}

// shape resolves the image and builds the container's configuration.
func (r *Runtime) shape(ctx context.Context, s app.Spec) (shape, error) {
	img, err := r.cli.ImageInspect(ctx, s.Image)
	if cerrdefs.IsNotFound(err) {
		return shape{}, &app.Failure{Code: "image_missing", Message: fmt.Sprintf("image %s is not on this host; an admin must build or pull it (for the demo image: make images)", s.Image)}
	}
	if err != nil {
		return shape{}, fmt.Errorf("inspect image %s: %w", s.Image, err)
	}
	user := ""
	switch {
	case s.User != "" && NonRootUser(s.User):
		user = s.User // the profile's
	case img.Config == nil || !NonRootUser(img.Config.User):
		user = r.o.DefaultUser // never run a workspace as root
	}
	home := r.o.HomeDir
	if s.Home != "" {
		home = s.Home
	}
	mounts := []mount.Mount{{Type: mount.TypeVolume, Source: VolumeName(s.ID), Target: home}}
	for _, m := range s.Mounts {
		// A bind Mount (unlike -v) fails on a missing source instead of
		// creating it as root on the host.
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target})
	}
	pids := s.Resources.Pids
	hc := &container.HostConfig{
		Mounts:      mounts,
		NetworkMode: container.NetworkMode(r.o.Network),
		// No engine-side restarts: the engine would resolve the bind
		// sources again behind Berth's back (a symlink swapped in since
		// the last check would be followed). The reconciler restarts a
		// crashed workspace itself, after validating again.
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		CapDrop:       []string{"ALL"},
		CapAdd:        s.CapAdd,
		SecurityOpt:   []string{"no-new-privileges:true"},
		Resources: container.Resources{
			Memory:    s.Resources.MemoryBytes,
			NanoCPUs:  s.Resources.MilliCPUs * 1_000_000,
			PidsLimit: &pids,
		},
		LogConfig: container.LogConfig{Type: LogDriver, Config: map[string]string{"max-size": strconv.FormatInt(r.o.LogMaxBytes>>10, 10) + "k", "max-file": strconv.Itoa(r.o.LogMaxFiles)}},
	}
	if s.Resources.DiskBytes > 0 && r.hardLimit(ctx) {
		// The writable layer's hard limit; the home volume (local driver)
		// has none, and the disk watch measures both.
		hc.StorageOpt = map[string]string{"size": strconv.FormatInt(s.Resources.DiskBytes, 10)}
	}
	labels := r.labels(s)
	cfg := &container.Config{Image: s.Image, User: user, Env: s.Env, Labels: labels, Hostname: s.Name}
	if len(s.Cmd) > 0 {
		cfg.Cmd = s.Cmd
	}
	// The image id, not its tag: a rebuilt image is a new spec.
	h, err := json.Marshal(struct {
		ImageID string
		Config  *container.Config
		Host    *container.HostConfig
	}{img.ID, cfg, hc})
	if err != nil {
		return shape{}, fmt.Errorf("hash spec of %s: %w", s.Name, err)
	}
	sum := sha256.Sum256(h)
	labels[LabelSpec] = hex.EncodeToString(sum[:12])
	return shape{cfg: cfg, host: hc, hash: labels[LabelSpec]}, nil
}

// create makes the container; EnsureRunning has checked the network.
func (r *Runtime) create(ctx context.Context, s app.Spec, sh shape) (string, error) {
	if _, err := r.cli.VolumeCreate(ctx, volume.CreateOptions{Name: VolumeName(s.ID), Labels: r.labels(s)}); err != nil {
		return "", fmt.Errorf("create volume for %s: %w", s.Name, err)
	}
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{r.o.Network: {}}}
	created, err := r.cli.ContainerCreate(ctx, sh.cfg, sh.host, nc, nil, ContainerName(s.Name, s.ID))
	if err != nil {
		if strings.Contains(err.Error(), "bind source path does not exist") {
			return "", &app.Failure{Code: "project_invalid", Message: "a project folder disappeared from the host: " + err.Error()}
		}
		if cerrdefs.IsInvalidArgument(err) {
			// Retrying an invalid spec cannot help: record it at once.
			return "", &app.Failure{Code: "container_invalid", Message: "the engine refused the workspace's container: " + err.Error()}
		}
		return "", fmt.Errorf("create container for %s: %w", s.Name, err) // %w keeps errdefs.IsConflict working
	}
	return created.ID, nil
}

// NonRootUser reports whether an image's USER runs as a non-root uid
// without looking into the image: only a numeric uid other than 0 (with
// any group) qualifies. Names ("root", "root:root", or a name that maps to
// uid 0 in the image's /etc/passwd) and an empty USER run as the default
// user instead.
func NonRootUser(user string) bool {
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.ParseUint(uid, 10, 32)
	return err == nil && n != 0
}

// OptionICC is the bridge driver option that, set to "false", drops traffic
// between containers of the network: a workspace reaches no other
// workspace directly, only through Traefik's public entrypoint.
const OptionICC = "com.docker.network.bridge.enable_icc"

// ensureNetwork creates the workspace network if it is missing, with
// inter-container traffic off, and refuses one that lets workspaces reach
// each other (made by hand or by an older Berth).
func (r *Runtime) ensureNetwork(ctx context.Context) error {
	r.netMu.Lock()
	defer r.netMu.Unlock()
	nw, err := r.cli.NetworkInspect(ctx, r.o.Network, network.InspectOptions{})
	if err == nil {
		return checkIsolated(nw, r.o.NoOutbound)
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", r.o.Network, err)
	}
	_, err = r.cli.NetworkCreate(ctx, r.o.Network, network.CreateOptions{Driver: "bridge", Internal: r.o.NoOutbound,
		Options: map[string]string{OptionICC: "false"},
		Labels:  map[string]string{LabelManaged: "true", LabelInstallation: r.o.Installation}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create network %s: %w", r.o.Network, err)
	}
	return nil
}

func checkIsolated(nw network.Inspect, noOutbound bool) error {
	if noOutbound && !nw.Internal {
		return &app.Failure{Code: "network_unsafe", Message: fmt.Sprintf(
			"network %s lets workspaces reach the outside world, but BERTH_WORKSPACE_OUTBOUND=false; stop its workspaces and remove it (docker network rm %s): Berth recreates it internal",
			nw.Name, nw.Name)}
	}
	if nw.Driver == "bridge" && nw.Options[OptionICC] == "false" {
		return nil
	}
	return &app.Failure{Code: "network_unsafe", Message: fmt.Sprintf(
		"network %s lets workspaces reach each other (driver %s, %s=%q); stop its workspaces, remove it (docker network rm %s) and Berth recreates it isolated, or create it with: docker network create -o %s=false %s",
		nw.Name, nw.Driver, OptionICC, nw.Options[OptionICC], nw.Name, OptionICC, nw.Name)}
}

// awaitHealthy polls the container's health endpoint over the workspace
// network until it answers 200, the container exits, or time runs out.
// healthCheck is how a workspace's readiness is asked: its port, and an
// HTTP path or "tcp".
type healthCheck struct {
	port int
	path string
}

// check is s's health check: its profile's, else the runtime's defaults.
func (r *Runtime) check(s app.Spec) healthCheck {
	hc := healthCheck{port: r.o.Port, path: r.o.HealthPath}
	if s.Port != 0 {
		hc.port = s.Port
	}
	if s.Health != "" {
		hc.path = s.Health
	}
	return hc
}

func (r *Runtime) awaitHealthy(ctx context.Context, cid, name string, hc healthCheck, onAddress func(events.Running)) (events.Running, error) {
	deadline := time.Now().Add(r.o.HealthTimeout)
	started := time.Now()
	announce := once(onAddress)
	for {
		info, err := r.cli.ContainerInspect(ctx, cid)
		if err != nil {
			return events.Running{}, fmt.Errorf("inspect %s: %w", name, err)
		}
		if info.State != nil && !info.State.Running && !info.State.Restarting {
			return events.Running{}, &app.Failure{Code: "container_exited",
				Message: fmt.Sprintf("the workspace exited with code %d while starting: %s", info.State.ExitCode, r.tail(ctx, cid))}
		}
		ip := ""
		if ep := info.NetworkSettings; ep != nil && ep.Networks[r.o.Network] != nil {
			ip = ep.Networks[r.o.Network].IPAddress
		}
		if ip != "" {
			at := events.Running{ContainerID: cid, Host: strings.TrimPrefix(info.Name, "/"), IP: ip, Port: hc.port}
			if r.healthy(ctx, ip, hc) {
				return at, nil
			}
			announce(at)
		}
		if time.Now().After(deadline) {
			return events.Running{}, &app.Failure{Code: "health_timeout",
				Message: fmt.Sprintf("the workspace did not answer %s on port %d within %s; check the image (or its catalog profile) or raise BERTH_HEALTH_TIMEOUT", hc.path, hc.port, r.o.HealthTimeout)}
		}
		select {
		case <-ctx.Done():
			return events.Running{}, ctx.Err()
		case <-time.After(pollInterval(time.Since(started))):
		}
	}
}

// once wraps f (nil: nothing) so only its first call runs.
func once(f func(events.Running)) func(events.Running) {
	done := f == nil
	return func(r events.Running) {
		if !done {
			done = true
			f(r)
		}
	}
}

// pollInterval polls tightly while a healthy IDE is likely to appear soon (a
// doubling backoff added up to half the start time to every launch), then
// eases off for slow images.
func pollInterval(elapsed time.Duration) time.Duration {
	if elapsed > 3*time.Second {
		return 250 * time.Millisecond
	}
	return 10 * time.Millisecond
}

func (r *Runtime) healthy(ctx context.Context, ip string, hc healthCheck) bool {
	addr := net.JoinHostPort(ip, strconv.Itoa(hc.port))
	if hc.path == "tcp" {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
	url := "http://" + addr + hc.path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	res, err := r.http.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// tail returns the last lines of the container's log, for failure messages.
func (r *Runtime) tail(ctx context.Context, cid string) string {
	rc, err := r.cli.ContainerLogs(ctx, cid, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "5"})
	if err != nil {
		return "(no logs)"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 2048))
	// Strip the multiplexing headers' control bytes; keep the text.
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 32 && r != '\n' {
			return -1
		}
		return r
	}, string(b)))
}

// EnsureStopped stops the container (SIGTERM, then SIGKILL after the stop
// timeout). No container means nothing runs: stopped.
func (r *Runtime) EnsureStopped(ctx context.Context, id string) (int, error) {
	if err := r.scoped(ctx); err != nil {
		return 0, err
	}
	c, err := r.find(ctx, id)
	if err != nil || c == nil {
		return 0, err
	}
	secs := int(r.o.StopTimeout.Seconds())
	if err := r.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
		return 0, fmt.Errorf("stop %s: %w", c.ID[:12], err)
	}
	info, err := r.cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		return 0, nil
	}
	return info.State.ExitCode, nil
}

// EnsureRemoved removes the container; the home volume only when purging
// (archiving it first is the reaper's job).
func (r *Runtime) EnsureRemoved(ctx context.Context, id string, purgeHome bool) error {
	if err := r.scoped(ctx); err != nil {
		return err
	}
	c, err := r.find(ctx, id)
	if err != nil {
		return err
	}
	if c != nil {
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: %w", c.ID[:12], err)
		}
	}
	if purgeHome {
		if err := r.cli.VolumeRemove(ctx, VolumeName(id), true); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove volume of %s: %w", id, err)
		}
	}
	return nil
}

// List returns every container labelled as a Berth workspace.
func (r *Runtime) List(ctx context.Context) ([]app.Observed, error) {
	if err := r.scoped(ctx); err != nil {
		return nil, err
	}
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelID))})
	if err != nil {
		return nil, fmt.Errorf("list workspace containers: %w", err)
	}
	out := make([]app.Observed, 0, len(list))
	for _, c := range list {
		// Only this installation's, and containers made before
		// installations were labelled (Legacy: they count for their
		// workspace, but the orphan sweep never removes them, since they
		// may be another installation's).
		inst := c.Labels[LabelInstallation]
		if inst != "" && inst != r.o.Installation {
			continue
		}
		out = append(out, app.Observed{ContainerID: c.ID, WorkspaceID: c.Labels[LabelID], Running: c.State == "running",
			Created: time.Unix(c.Created, 0), Legacy: inst == ""})
	}
	return out, nil
}

// RemoveContainer removes one container by id (used by the reconciler for
// orphans).
func (r *Runtime) RemoveContainer(ctx context.Context, cid string) error {
	if err := r.scoped(ctx); err != nil {
		return err
	}
	// Checked again here, not only in List: this removes by id.
	info, err := r.cli.ContainerInspect(ctx, cid)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", cid[:12], err)
	}
	if info.Config == nil || info.Config.Labels[LabelInstallation] != r.o.Installation {
		return fmt.Errorf("container %s belongs to another installation; not removed", cid[:12])
	}
	err = r.cli.ContainerRemove(ctx, cid, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", cid[:12], err)
	}
	return nil
}

// IsUnavailable reports whether err means the engine could not be reached.
func IsUnavailable(err error) bool {
	return client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded)
}
