// Command berth-provisioner turns the log's desired state into Docker
// containers, records what it observed, and reconciles drift.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
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
	"github.com/berthdev/berth/services/provisioner/internal/docker"
)

func main() { service.Main("berth-provisioner", run) }

type cfg struct {
	HTTPAddr       string
	NATSURL        string
	Installation   string
	Max            config.ResourceMax
	StreamReplicas int
	ProjectsRoot   string
	Network        string
	Outbound       bool
	Port           int
	HealthPath     string
	HealthTimeout  time.Duration
	StopTimeout    time.Duration
	StopDrain      time.Duration
	config.Routing
	ReconcileInterval time.Duration
	RedriveAfter      time.Duration
	Deadline          time.Duration
	OrphanGrace       time.Duration
	RestartPolicy     string
	Concurrency       int
	MaxDeliver        int
	ArchiveDir        string
	ArchiveProjects   bool
	HeartbeatFile     string
	HeartbeatInterval time.Duration
	config.Common
}

func parse(args []string, out io.Writer) (cfg, error) {
	var c cfg
	s := config.New("berth-provisioner", out)
	s.String(&c.HTTPAddr, "http-addr", "BERTH_PROVISIONER_HTTP_ADDR", "127.0.0.1:8081", "address of /healthz, /readyz and /metrics")
	s.String(&c.NATSURL, "nats-url", "BERTH_NATS_URL", "nats://127.0.0.1:4222", "NATS URL (the API's embedded server by default)")
	s.String(&c.Installation, "installation", "BERTH_INSTALLATION", "", "this installation's id on the engine (default: generated once and kept in NATS); containers of other installations are never touched")
	s.ResourceMax(&c.Max)
	s.Int(&c.StreamReplicas, "stream-replicas", "BERTH_STREAM_REPLICAS", 1, "replicas of the log stream")
	s.String(&c.ProjectsRoot, "projects-root", "BERTH_PROJECTS_ROOT", "data/projects", "folder holding the project folders (absolute host path under compose)")
	s.String(&c.Network, "network", "BERTH_NETWORK", "berth-workspaces", "Docker network for workspace containers")
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
	s.String(&c.ArchiveDir, "archive-dir", "BERTH_ARCHIVE_DIR", "data/archives", "folder where workspace archives (<id>/<version>.tar.gz) are written and restored from")
	s.Bool(&c.ArchiveProjects, "archive-projects", "BERTH_ARCHIVE_PROJECTS", false, "also put the workspace's project folders in its archive (never restored)")
	s.String(&c.HeartbeatFile, "heartbeat-file", "BERTH_HEARTBEAT_FILE", "/home/coder/.local/share/code-server/heartbeat", "file in a workspace whose modification time counts as activity (code-server keeps this one)")
	s.Duration(&c.HeartbeatInterval, "heartbeat-interval", "BERTH_HEARTBEAT_INTERVAL", 30*time.Second, "how often heartbeat files are read (0 = never)")
	s.Common(&c.Common)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	if c.HeartbeatInterval < 0 || (c.HeartbeatInterval > 0 && !strings.HasPrefix(c.HeartbeatFile, "/")) {
		return c, fmt.Errorf("bad configuration: BERTH_HEARTBEAT_FILE=%q, BERTH_HEARTBEAT_INTERVAL=%s: want an absolute path and a non-negative interval", c.HeartbeatFile, c.HeartbeatInterval)
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
	engine := docker.New(cli, docker.Options{Network: c.Network, NoOutbound: !c.Outbound, Port: c.Port, HealthPath: c.HealthPath, HealthTimeout: c.HealthTimeout, StopTimeout: c.StopTimeout})

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
		l, err := eventlog.OpenWhenReady(ctx, nc, eventlog.Options{ReadOnly: true, Meter: tel.Meter}, log) // the API owns the stream
		if err != nil {
			return err
		}
		id, err := installation.Resolve(ctx, l.JetStream(), c.StreamReplicas, c.Installation)
		if err != nil {
			return err
		}
		rt := engine.Scoped(id)
		proj := events.NewProjection()
		if err := l.Replay(ctx, log, proj); err != nil {
			return err
		}
		board, err := enginestatus.Open(ctx, l.JetStream(), c.StreamReplicas)
		if err != nil {
			return err
		}
		tracker, err := activity.Open(ctx, l.JetStream(), c.StreamReplicas, 30*time.Second, log)
		if err != nil {
			return err
		}
		replayed.Open()
		prov := app.New(l, proj, rt, log, app.Options{ProjectsRoot: c.ProjectsRoot, Routing: wsurl.Mode(c.Routing.Mode),
			ArchiveDir: c.ArchiveDir, ArchiveProjects: c.ArchiveProjects, StopDrain: c.StopDrain,
			Max: events.Resources{MemoryBytes: c.Max.MemoryBytes, MilliCPUs: int64(c.Max.CPUs * 1000), Pids: int64(c.Max.Pids)}})
		rec := &app.Reconciler{Log: l, Projection: proj, Engine: rt, Driver: prov, Logger: log, OrphanGrace: c.OrphanGrace,
			Restart: c.RestartPolicy == "restart", Redrive: c.RedriveAfter, Deadline: c.Deadline, Now: time.Now}
		onReady(ln.Addr().String())
		log.Info("provisioner ready", "installation", id, "nats", c.NATSURL, "network", c.Network, "projects_root", c.ProjectsRoot)
		return service.Run(ctx, log, c.ShutdownGrace,
			service.Actor{Name: "consumer", Run: func(ctx context.Context) error {
				return l.Consume(ctx, log, eventlog.DurableOptions{Name: "provisioner", Concurrency: c.Concurrency, MaxDeliver: c.MaxDeliver},
					func(ctx context.Context, e events.Envelope, attempt int, last bool) error {
						return prov.Handle(ctx, e.Subject, e.Sequence, last)
					})
			}},
			service.Actor{Name: "reconciler", Run: func(ctx context.Context) error {
				resumePending(ctx, log, prov, proj)
				return reconcileLoop(ctx, log, rec, rt, c.ReconcileInterval)
			}},
			service.Actor{Name: "engine-status", Run: func(ctx context.Context) error {
				return reportEngine(ctx, log, board, rt)
			}},
			service.Actor{Name: "heartbeats", Run: func(ctx context.Context) error {
				if c.HeartbeatInterval == 0 {
					<-ctx.Done()
					return nil
				}
				hb := &app.Heartbeats{Projection: proj, Files: rt, Activity: tracker, Path: c.HeartbeatFile, Logger: log, Now: time.Now}
				ticker := time.NewTicker(c.HeartbeatInterval)
				defer ticker.Stop()
				for {
					hb.Poll(ctx)
					select {
					case <-ctx.Done():
						return nil
					case <-ticker.C:
					}
				}
			}},
		)
	}}
	return service.Run(ctx, log, c.ShutdownGrace, service.HTTPServer("http", srv, ln, c.ShutdownGrace), service.Supervised(log, work))
}

// reportEngine tells the API, through the status bucket, whether this
// provisioner reaches Docker, so starts are refused with 503 while none does.
func reportEngine(ctx context.Context, log *slog.Logger, board *enginestatus.Board, rt *docker.Runtime) error {
	host, _ := os.Hostname()
	instance := fmt.Sprintf("%s-%d", host, os.Getpid())
	ticker := time.NewTicker(enginestatus.TTL / 4)
	defer ticker.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		engineErr := rt.Ping(pctx)
		cancel()
		if err := board.Publish(ctx, instance, engineErr, time.Now()); err != nil && ctx.Err() == nil {
			log.Warn("engine status not published", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// resumePending handles, once at start-up, every workspace whose request is
// still open. After a crash its message comes back only when its ack wait
// expires; handling is idempotent, so doing it now as well is safe and
// makes recovery immediate.
func resumePending(ctx context.Context, log *slog.Logger, prov *app.Provisioner, proj *events.Projection) {
	for _, ws := range proj.Workspaces(func(ws events.Workspace) bool { return app.Plan(ws) != app.ActionNone }) {
		go func() {
			if err := prov.Handle(ctx, ws.ID, 0, false); err != nil && ctx.Err() == nil {
				log.Warn("resuming open request failed; the consumer will retry", "workspace", ws.Name, "err", err)
			}
		}()
	}
}

// reconcileLoop sweeps at start, every interval, and shortly after Docker
// reports a workspace container dying or being destroyed.
func reconcileLoop(ctx context.Context, log *slog.Logger, rec *app.Reconciler, rt *docker.Runtime, interval time.Duration) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	kick := make(chan struct{}, 1)
	go watchDocker(ctx, log, rt, kick)
	sweep := func() {
		if err := rec.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn("reconcile sweep failed", "err", err)
		}
	}
	sweep()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			sweep()
		case <-kick:
			time.Sleep(200 * time.Millisecond) // let a burst of events settle
			sweep()
		}
	}
}

// watchDocker turns die/oom/destroy events of workspace containers into
// sweep requests; it resubscribes when the engine goes away and comes back.
func watchDocker(ctx context.Context, log *slog.Logger, rt *docker.Runtime, kick chan<- struct{}) {
	f := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", docker.LabelID),
		filters.Arg("event", "die"), filters.Arg("event", "oom"), filters.Arg("event", "destroy"))
	for ctx.Err() == nil {
		msgs, errs := rt.Events(ctx, f)
	loop:
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-msgs:
				log.Debug("docker event", "action", m.Action, "workspace", m.Actor.Attributes[docker.LabelID])
				select {
				case kick <- struct{}{}:
				default:
				}
			case err := <-errs:
				if ctx.Err() == nil {
					log.Warn("docker event stream ended; resubscribing", "err", err)
				}
				break loop
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}
