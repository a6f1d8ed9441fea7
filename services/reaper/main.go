// Command berth-reaper applies the lifecycle policy: it stops idle
// workspaces and archives, then deletes, workspaces stopped longer than the
// retention. It only appends requests to the log; the provisioner carries
// them out, so every reaping is in the audit history with its reason.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/config"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/pkg/platform/service"
	"github.com/berthdev/berth/services/reaper/internal/app"
	"github.com/berthdev/berth/services/reaper/internal/policy"
)

func main() { service.Main("berth-reaper", run) }

type cfg struct {
	HTTPAddr string
	NATSURL  string
	Interval time.Duration
	Instance string
	config.Lifecycle
	config.Common
}

func parse(args []string, out io.Writer) (cfg, error) {
	var c cfg
	host, _ := os.Hostname()
	s := config.New("berth-reaper", out)
	s.String(&c.HTTPAddr, "http-addr", "BERTH_REAPER_HTTP_ADDR", "127.0.0.1:8083", "address of /healthz, /readyz and /metrics")
	s.String(&c.NATSURL, "nats-url", "BERTH_NATS_URL", "nats://127.0.0.1:4222", "NATS URL (the API's embedded server by default)")
	s.Duration(&c.Interval, "sweep-interval", "BERTH_SWEEP_INTERVAL", time.Minute, "how often the policy is applied to every workspace")
	s.String(&c.Instance, "instance", "BERTH_REAPER_INSTANCE", host, "name of this replica in the events' actor (service:reaper:<instance>)")
	s.Lifecycle(&c.Lifecycle)
	s.Common(&c.Common)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	if c.Interval <= 0 {
		return c, fmt.Errorf("bad configuration: BERTH_SWEEP_INTERVAL=%s: must be positive", c.Interval)
	}
	return c, c.Lifecycle.Validate()
}

func run(ctx context.Context, args []string, out io.Writer, onReady func(addr string)) error {
	onReady = service.Once(onReady)
	c, err := parse(args, out)
	if err != nil {
		return err
	}
	p, err := service.Start("reaper", out, c.Common, c.HTTPAddr, c.NATSURL)
	if err != nil {
		return err
	}
	defer p.Close()
	log, tel, ln, nc := p.Log, p.Tel, p.Listener, p.NATS

	caughtUp := service.NewGate("log not replayed yet")
	health := service.NewHealth(map[string]service.Check{"nats": natsbus.Ready(nc), "log": caughtUp.Check})
	srv := &http.Server{Handler: service.OpsHandler(health, tel.Handler), ReadHeaderTimeout: 10 * time.Second}

	reap := service.Actor{Name: "sweep", Run: func(ctx context.Context) error {
		l, err := eventlog.OpenWhenReady(ctx, nc, eventlog.Options{ReadOnly: true, Meter: tel.Meter}, log) // the API owns the stream
		if err != nil {
			return err
		}
		// The bucket in memory (a watcher): a sweep reads no record but
		// those it would act on.
		tracker, err := activity.Watch(ctx, l.JetStream(), log)
		if err != nil {
			return err
		}
		proj := events.NewProjection()
		if err := l.Replay(ctx, log, proj); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		caughtUp.Open()
		onReady(ln.Addr().String())
		s := &app.Sweeper{Log: l.ConflictAs(app.ErrConflict), Workspaces: proj, Activity: tracker, Now: time.Now, Logger: log, Meter: tel.Meter, Instance: c.Instance,
			Policy: policy.Settings{IdleTimeout: c.IdleTimeout, MinIdleTimeout: c.IdleTimeoutMin, MaxIdleTimeout: c.IdleTimeoutMax,
				Warning: c.IdleWarning, Retention: c.Retention, ArchiveRetry: c.ArchiveRetry}}
		log.Info("reaper sweeping", "interval", c.Interval, "idle_timeout", c.IdleTimeout, "retention", c.Retention, "idle_warning", c.IdleWarning)
		s.Sweep(ctx)                         // once right away, then every interval
		ticker := time.NewTicker(c.Interval) // drops ticks while a sweep runs long
		defer ticker.Stop()
		return s.Run(ctx, ticker.C)
	}}
	return service.Run(ctx, log, c.ShutdownGrace, service.HTTPServer("http", srv, ln, c.ShutdownGrace), service.Supervised(log, reap))
}
