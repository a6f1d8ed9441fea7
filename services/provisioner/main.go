// Command berth-provisioner turns the log's desired state into Docker
// containers, records what it observed, and reconciles drift.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/config"
	"github.com/berthdev/berth/pkg/platform/enginestatus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/installation"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/pkg/platform/service"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/provisioner/internal/app"
	"github.com/berthdev/berth/services/provisioner/internal/archive"
	"github.com/berthdev/berth/services/provisioner/internal/docker"
	"github.com/berthdev/berth/services/provisioner/internal/hostdisk"
	"github.com/berthdev/berth/services/provisioner/internal/logserver"
)

func main() { service.Main("berth-provisioner", run) }

type cfg struct {
	HTTPAddr      string
	NATSURL       string
	Installation  string
	Max           config.ResourceMax
	ProjectsRoot  string
	Network       string
	Outbound      bool
	Port          int
	HealthPath    string
	HealthTimeout time.Duration
	StopTimeout   time.Duration
	StopDrain     time.Duration
	config.Routing
	ReconcileInterval time.Duration
	RedriveAfter      time.Duration
	Deadline          time.Duration
	OrphanGrace       time.Duration
	RestartPolicy     string
	Concurrency       int
	MaxDeliver        int
	AttemptTimeout    time.Duration
	ArchiveDir        string
	ArchiveProjects   bool
	Prepare           bool
	Runtime           string
	SwarmAttach       []string
	SwarmPlacement    time.Duration
	HeartbeatFile     string
	HeartbeatInterval time.Duration
	LogMaxSize        int64
	LogMaxFiles       int
	DiskInterval      time.Duration
	DiskGrace         time.Duration
	MinFreeDisk       hostdisk.Threshold
	GuardPaths        []string
	config.Common
}

func parse(args []string, out io.Writer) (cfg, error) {
	var c cfg
	s := config.New("berth-provisioner", out)
	s.String(&c.HTTPAddr, "http-addr", "BERTH_PROVISIONER_HTTP_ADDR", "127.0.0.1:8081", "address of /healthz, /readyz and /metrics")
	s.String(&c.NATSURL, "nats-url", "BERTH_NATS_URL", "nats://127.0.0.1:4222", "NATS URL (the API's embedded server by default)")
	s.String(&c.Installation, "installation", "BERTH_INSTALLATION", "", "this installation's id on the engine (default: generated once and kept in NATS); containers of other installations are never touched")
	s.ResourceMax(&c.Max)
	s.String(&c.ProjectsRoot, "projects-root", "BERTH_PROJECTS_ROOT", "data/projects", "folder holding the project folders (absolute host path under compose)")
	s.String(&c.Network, "network", "BERTH_NETWORK", "berth-workspaces", "Docker network for workspace containers (runtime docker)")
	s.String(&c.Runtime, "runtime", "BERTH_RUNTIME", "docker", "docker (a container per workspace on this engine) or swarm (a service per workspace on a Swarm whose manager this engine is; docs/scale.md)")
	var attach string
	s.String(&attach, "swarm-attach", "BERTH_SWARM_ATTACH", "", "runtime swarm: comma-separated containers joined to every workspace's overlay network, the provisioner's own and Traefik's (docs/scale.md)")
	s.Bool(&c.Outbound, "workspace-outbound", "BERTH_WORKSPACE_OUTBOUND", true, "let workspaces reach the outside world (git clone, package installs); false makes the workspace network internal")
	s.Int(&c.Port, "workspace-port", "BERTH_WORKSPACE_PORT", 8080, "port the IDE listens on inside the container")
	s.String(&c.HealthPath, "health-path", "BERTH_HEALTH_PATH", "/healthz", "HTTP path answering 200 when the IDE is ready")
	s.Duration(&c.HealthTimeout, "health-timeout", "BERTH_HEALTH_TIMEOUT", 60*time.Second, "how long a workspace may take to answer its health check")
	s.Duration(&c.StopTimeout, "stop-timeout", "BERTH_STOP_TIMEOUT", 10*time.Second, "grace before a stopping container is killed")
	s.Duration(&c.StopDrain, "stop-drain", "BERTH_STOP_DRAIN", time.Second, "how long after a stop/delete request the container is left running so Traefik drops its route first (requests get 404, not a hang)")
	s.Routing(&c.Routing)
	s.Duration(&c.ReconcileInterval, "reconcile-interval", "BERTH_RECONCILE_INTERVAL", 30*time.Second, "how often the log is compared with Docker")
	s.Duration(&c.RedriveAfter, "redrive-after", "BERTH_REDRIVE_AFTER", 30*time.Second, "how long a start/stop/delete/archive/restore may stay open with no worker on it before the reconciler carries it out")
	s.Duration(&c.Deadline, "transition-deadline", "BERTH_TRANSITION_DEADLINE", 5*time.Minute, "how long a workspace may stay starting or stopping before it is recorded as failed (deadline_exceeded); must exceed health-timeout + stop-timeout")
	s.Duration(&c.OrphanGrace, "orphan-grace", "BERTH_ORPHAN_GRACE", 5*time.Minute, "age before a labelled container unknown to the log is removed")
	s.String(&c.RestartPolicy, "restart-policy", "BERTH_RESTART_POLICY", "restart", "restart or fail: what to do when a running workspace's container vanishes or dies")
	s.Int(&c.Concurrency, "concurrency", "BERTH_PROVISIONER_CONCURRENCY", 8, "workspaces provisioned at once")
	s.Int(&c.MaxDeliver, "max-deliver", "BERTH_PROVISIONER_MAX_DELIVER", 6, "attempts before a transient failure is recorded and the message dead-lettered")
	s.Duration(&c.AttemptTimeout, "attempt-timeout", "BERTH_PROVISIONER_ATTEMPT_TIMEOUT", time.Hour, "longest one attempt may take (an archive of a large home is the longest); it then fails and is retried")
	s.String(&c.ArchiveDir, "archive-dir", "BERTH_ARCHIVE_DIR", "data/archives", "folder where workspace archives (<id>/<version>.tar.gz) are written and restored from")
	s.Bool(&c.ArchiveProjects, "archive-projects", "BERTH_ARCHIVE_PROJECTS", false, "also put the workspace's project folders in its archive (never restored)")
	s.Duration(&c.SwarmPlacement, "swarm-placement-timeout", "BERTH_SWARM_PLACEMENT_TIMEOUT", 15*time.Second, "runtime swarm: how long a start may wait for a node that can run the workspace (the one holding its home volume) before it fails with node_unavailable")
	s.Bool(&c.Prepare, "prepare-containers", "BERTH_PREPARE_CONTAINERS", true, "create the container of a workspace defined without a start (by an admin, another system) right away, so its first start is as fast as a restart")
	s.String(&c.HeartbeatFile, "heartbeat-file", "BERTH_HEARTBEAT_FILE", "/home/coder/.local/share/code-server/heartbeat", "file in a workspace whose modification time counts as activity (code-server keeps this one)")
	s.Duration(&c.HeartbeatInterval, "heartbeat-interval", "BERTH_HEARTBEAT_INTERVAL", 30*time.Second, "how often heartbeat files are read (0 = never)")
	s.Bytes(&c.LogMaxSize, "workspace-log-max-size", "BERTH_WORKSPACE_LOG_MAX_SIZE", 10<<20, "size at which a workspace container's log file is rotated (json-file max-size)")
	s.Int(&c.LogMaxFiles, "workspace-log-max-files", "BERTH_WORKSPACE_LOG_MAX_FILES", 3, "log files kept per workspace container (json-file max-file): a workspace's log never takes more than this times the max size")
	s.Duration(&c.DiskInterval, "disk-interval", "BERTH_DISK_INTERVAL", 30*time.Second, "how often running workspaces' disk use (writable layer plus home volume) is measured against their limit (0 = never)")
	s.Duration(&c.DiskGrace, "disk-grace", "BERTH_DISK_GRACE", time.Minute, "how long a workspace over its disk limit keeps running after its disk_warning before it is stopped (disk_quota_exceeded)")
	var minFree, guard string
	s.String(&minFree, "min-free-disk", "BERTH_MIN_FREE_DISK", "2GiB", "starts are refused (host_disk_low) while a watched disk has less free space than this: a size, or a percentage like 5%")
	s.String(&guard, "disk-guard-paths", "BERTH_DISK_GUARD_PATHS", "", "comma-separated folders whose disks must keep BERTH_MIN_FREE_DISK free, besides BERTH_ARCHIVE_DIR and the engine's root folder (when this host sees it); add the JetStream store if NATS runs on this host")
	s.Common(&c.Common)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	th, err := hostdisk.ParseThreshold(minFree)
	if err != nil {
		return c, fmt.Errorf("bad configuration: BERTH_MIN_FREE_DISK=%w", err)
	}
	c.MinFreeDisk, c.GuardPaths = th, splitList(guard)
	if c.DiskInterval < 0 || c.DiskGrace < 0 {
		return c, fmt.Errorf("bad configuration: BERTH_DISK_INTERVAL=%s, BERTH_DISK_GRACE=%s: must not be negative", c.DiskInterval, c.DiskGrace)
	}
	if c.LogMaxSize < 1<<10 || c.LogMaxFiles < 1 {
		return c, fmt.Errorf("bad configuration: BERTH_WORKSPACE_LOG_MAX_SIZE=%d, BERTH_WORKSPACE_LOG_MAX_FILES=%d: want at least 1KiB and 1 file", c.LogMaxSize, c.LogMaxFiles)
	}
	if c.Max.DiskBytes <= 0 {
		return c, fmt.Errorf("bad configuration: BERTH_MAX_DISK must be positive")
	}
	if c.HeartbeatInterval < 0 || (c.HeartbeatInterval > 0 && !strings.HasPrefix(c.HeartbeatFile, "/")) {
		return c, fmt.Errorf("bad configuration: BERTH_HEARTBEAT_FILE=%q, BERTH_HEARTBEAT_INTERVAL=%s: want an absolute path and a non-negative interval", c.HeartbeatFile, c.HeartbeatInterval)
	}
	c.SwarmAttach = splitList(attach)
	switch {
	case c.Runtime != "docker" && c.Runtime != "swarm":
		return c, fmt.Errorf("bad configuration: BERTH_RUNTIME=%q: want docker or swarm", c.Runtime)
	case c.SwarmPlacement <= 0:
		return c, fmt.Errorf("bad configuration: BERTH_SWARM_PLACEMENT_TIMEOUT=%s: must be positive", c.SwarmPlacement)
	case c.Runtime == "swarm" && len(c.SwarmAttach) == 0:
		return c, fmt.Errorf("bad configuration: BERTH_RUNTIME=swarm needs BERTH_SWARM_ATTACH (the provisioner's and Traefik's containers, which must reach every workspace's network)")
	}
	if c.Installation != "" {
		if err := installation.Validate(c.Installation); err != nil {
			return c, fmt.Errorf("bad configuration: BERTH_INSTALLATION: %w", err)
		}
	}
	if c.StopDrain < 0 || c.StopDrain > time.Minute {
		return c, fmt.Errorf("bad configuration: BERTH_STOP_DRAIN=%s: want 0 to 1m", c.StopDrain)
	}
	if c.Deadline <= c.HealthTimeout+c.StopTimeout || c.RedriveAfter <= 0 {
		return c, fmt.Errorf("bad configuration: BERTH_TRANSITION_DEADLINE=%s must exceed BERTH_HEALTH_TIMEOUT + BERTH_STOP_TIMEOUT (%s), and BERTH_REDRIVE_AFTER=%s must be positive", c.Deadline, c.HealthTimeout+c.StopTimeout, c.RedriveAfter)
	}
	if c.AttemptTimeout <= 0 {
		return c, fmt.Errorf("bad configuration: BERTH_PROVISIONER_ATTEMPT_TIMEOUT=%s: must be positive", c.AttemptTimeout)
	}
	if c.ArchiveDir == "" {
		return c, fmt.Errorf("bad configuration: BERTH_ARCHIVE_DIR is empty")
	}
	if c.RestartPolicy != "restart" && c.RestartPolicy != "fail" {
		return c, fmt.Errorf("bad configuration: BERTH_RESTART_POLICY=%q: want restart or fail", c.RestartPolicy)
	}
	if _, err := wsurl.Parse(c.Routing.Mode, c.PublicURL, c.Domain); err != nil {
		return c, fmt.Errorf("bad configuration: %w", err)
	}
	return c, nil
}

// run is the composition root; onReady (tests) is called once the log is
// replayed and the consumer runs.
func run(ctx context.Context, args []string, out io.Writer, onReady func(addr string)) error {
	onReady = service.Once(onReady)
	c, err := parse(args, out)
	if err != nil {
		return err
	}
	p, err := service.Start("provisioner", out, c.Common, c.HTTPAddr, c.NATSURL)
	if err != nil {
		return err
	}
	defer p.Close()
	log, tel, ln, nc := p.Log, p.Tel, p.Listener, p.NATS
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer cli.Close()
	engine := newRuntime(c, docker.New(cli, docker.Options{Network: c.Network, NoOutbound: !c.Outbound, Port: c.Port, HealthPath: c.HealthPath, HealthTimeout: c.HealthTimeout, StopTimeout: c.StopTimeout,
		LogMaxBytes: c.LogMaxSize, LogMaxFiles: c.LogMaxFiles}))

	if err := os.MkdirAll(c.ArchiveDir, 0o750); err != nil {
		// Not fatal: archives will fail and be recorded as archive_failed,
		// and nothing is deleted without one.
		log.Error("archive folder is not usable; archives will fail until it is fixed", "dir", c.ArchiveDir, "err", err)
	}

	replayed := service.NewGate("log not replayed yet")
	health := service.NewHealth(map[string]service.Check{
		"nats":   natsbus.Ready(nc),
		"docker": engine.Ping,
		"log":    replayed.Check,
	})
	srv := &http.Server{Handler: service.OpsHandler(health, tel.Handler), ReadHeaderTimeout: 10 * time.Second}

	work := service.Actor{Name: "provisioner", Run: func(ctx context.Context) error {
		return provision(ctx, c, p, engine, func() {
			replayed.Open()
			onReady(ln.Addr().String())
		})
	}}
	return service.Run(ctx, log, c.ShutdownGrace, service.HTTPServer("http", srv, ln, c.ShutdownGrace), service.Supervised(log, work))
}

// provision opens what the use cases need on the bus, replays the log, calls
// ready, and runs the use cases until ctx ends.
func provision(ctx context.Context, c cfg, p *service.Process, engine workspaceRuntime, ready func()) error {
	log, tel, nc := p.Log, p.Tel, p.NATS
	l, err := eventlog.OpenWhenReady(ctx, nc, eventlog.Options{ReadOnly: true, Meter: tel.Meter}, log) // the API owns the stream
	if err != nil {
		return err
	}
	id, err := installation.Resolve(ctx, l.JetStream(), c.Installation)
	if err != nil {
		return err
	}
	rt := engine.scoped(id)
	proj := events.NewProjection()
	if err := l.Replay(ctx, log, proj); err != nil {
		return err
	}
	board, err := enginestatus.Open(ctx, l.JetStream())
	if err != nil {
		return err
	}
	tracker, err := activity.Open(ctx, l.JetStream(), 30*time.Second, log)
	if err != nil {
		return err
	}
	appLog := l.ConflictAs(app.ErrConflict)
	guard := &hostdisk.Guard{Paths: guardPaths(ctx, c, rt, log), Min: c.MinFreeDisk}
	prov := app.New(appLog, proj, rt, log, app.Options{ProjectsRoot: c.ProjectsRoot, Routing: wsurl.Mode(c.Routing.Mode),
		Archives: archive.Folder(c.ArchiveDir), ArchiveProjects: c.ArchiveProjects, StopDrain: c.StopDrain, Prepare: c.Prepare,
		Max:   events.Resources{MemoryBytes: c.Max.MemoryBytes, MilliCPUs: int64(c.Max.CPUs * 1000), Pids: int64(c.Max.Pids), DiskBytes: c.Max.DiskBytes},
		Meter: tel.Meter, HostSpace: guard})
	rec := &app.Reconciler{Log: appLog, Projection: proj, Engine: rt, Driver: prov, Logger: log, OrphanGrace: c.OrphanGrace,
		Restart: c.RestartPolicy == "restart", Redrive: c.RedriveAfter, Deadline: c.Deadline, Now: time.Now, Meter: tel.Meter}
	host, _ := os.Hostname()
	reporter := &app.EngineReporter{Board: board, Engine: rt, Instance: fmt.Sprintf("%s-%d", host, os.Getpid()), Logger: log, Now: time.Now}
	ready()
	log.Info("provisioner ready", "installation", id, "nats", c.NATSURL, "network", c.Network, "projects_root", c.ProjectsRoot)

	actors := []service.Actor{
		{Name: "consumer", Run: func(ctx context.Context) error {
			return l.Consume(ctx, log, eventlog.DurableOptions{Name: "provisioner", Concurrency: c.Concurrency, MaxDeliver: c.MaxDeliver, Timeout: c.AttemptTimeout},
				func(ctx context.Context, e events.Envelope, attempt int, last bool) error {
					return prov.Handle(ctx, e.Subject, e.Sequence, last)
				})
		}},
		{Name: "reconciler", Run: ticking(c.ReconcileInterval, func(ctx context.Context, ticks <-chan time.Time) error {
			app.ResumePending(ctx, log, proj, prov)
			kicks := make(chan struct{}, 1)
			go rt.WatchExits(ctx, log, kicks)
			return (&app.ReconcileLoop{Reconciler: rec, Logger: log}).Run(ctx, ticks, kicks)
		})},
		{Name: "engine-status", Run: ticking(enginestatus.TTL/4, reporter.Run)},
		{Name: "logs", Run: (&logserver.Server{NC: nc, Source: rt, Code: logsCode, Logger: log, Concurrency: 4, Timeout: 10 * time.Second}).Run},
	}
	if c.DiskInterval > 0 {
		dw := &app.DiskWatch{Log: appLog, Projection: proj, Meter: rt, Engine: rt, Driver: prov, Logger: log, Max: c.Max.DiskBytes,
			Grace: c.DiskGrace, Drain: c.StopDrain, Now: time.Now}
		actors = append(actors, service.Actor{Name: "disk-watch", Run: ticking(c.DiskInterval, dw.Run)})
	}
	if c.HeartbeatInterval > 0 {
		hb := &app.Heartbeats{Projection: proj, Files: rt, Probe: rt, Busy: rt, Activity: tracker, Path: c.HeartbeatFile, Images: proj.Image, Routing: wsurl.Mode(c.Routing.Mode), Logger: log, Now: time.Now}
		actors = append(actors, service.Actor{Name: "heartbeats", Run: ticking(c.HeartbeatInterval, hb.Run)})
	}
	return service.Run(ctx, log, c.ShutdownGrace, actors...)
}

// workspaceRuntime is everything the use cases need of the engine.
type workspaceRuntime interface {
	app.Runtime
	app.Inventory
	app.Pinger
	app.HeartbeatFiles
	app.ActivityProbe
	app.BusyProbe
	app.DiskMeter
	logserver.Source
	RootDir(ctx context.Context) (string, error)
	WatchExits(ctx context.Context, log *slog.Logger, kick chan<- struct{})
	// scoped returns the runtime for one installation.
	scoped(installation string) workspaceRuntime
}

type containers struct{ *docker.Runtime }

func (r containers) scoped(id string) workspaceRuntime { return containers{r.Scoped(id)} }

type services struct{ *docker.Swarm }

func (r services) scoped(id string) workspaceRuntime { return services{r.Scoped(id)} }

// newRuntime picks the runtime BERTH_RUNTIME names.
func newRuntime(c cfg, r *docker.Runtime) workspaceRuntime {
	if c.Runtime == "swarm" {
		w := docker.NewSwarm(r, c.SwarmAttach)
		w.Unschedulable = c.SwarmPlacement
		return services{w}
	}
	return containers{r}
}

// guardPaths are the folders whose disks the host guard watches: the
// archives', the configured ones, and the engine's root folder if this
// host sees it (not from inside a container, nor for a remote engine).
func guardPaths(ctx context.Context, c cfg, rt workspaceRuntime, log *slog.Logger) []string {
	paths := append([]string{c.ArchiveDir}, c.GuardPaths...)
	if root, err := rt.RootDir(ctx); err == nil {
		if _, err := hostdisk.Statfs(root); err == nil {
			paths = append(paths, root)
		}
	}
	var out []string
	for _, p := range paths {
		if _, err := hostdisk.Statfs(p); err != nil {
			log.Warn("host disk guard cannot watch this folder", "path", p, "err", err)
			continue
		}
		out = append(out, p)
	}
	log.Info("host disk guard", "paths", out, "min_free", c.MinFreeDisk.String())
	return out
}

// splitList splits a comma-separated setting, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// logsCode names an engine error for a logs reply.
func logsCode(err error) string {
	switch {
	case errors.Is(err, docker.ErrNoContainer):
		return "no_container"
	case docker.IsUnavailable(err):
		return "engine_unavailable"
	}
	return "engine_error"
}

// ticking gives run a ticker of period every, stopped when run returns.
func ticking(every time.Duration, run func(ctx context.Context, ticks <-chan time.Time) error) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		return run(ctx, t.C)
	}
}
