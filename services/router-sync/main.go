// Command berth-router-sync keeps Traefik's routes equal to the log: it
// folds the log into a projection and renders the running workspaces into
// the file provider's directory, atomically, after every change.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/config"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/pkg/platform/service"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/router-sync/internal/app"
	"github.com/berthdev/berth/services/router-sync/internal/configdir"
	"github.com/berthdev/berth/services/router-sync/internal/render"
)

func main() { service.Main("berth-router-sync", run) }

type cfg struct {
	HTTPAddr   string
	NATSURL    string
	DynamicDir string
	FileName   string
	config.Routing
	EntryPoint string
	AuthURL    string
	Backend    string
	APIURL     string
	TLSStore   bool
	config.Common
}

func parse(args []string, out io.Writer) (cfg, error) {
	var c cfg
	s := config.New("berth-router-sync", out)
	s.String(&c.HTTPAddr, "http-addr", "BERTH_ROUTER_HTTP_ADDR", "127.0.0.1:8082", "address of /healthz, /readyz and /metrics")
	s.String(&c.NATSURL, "nats-url", "BERTH_NATS_URL", "nats://127.0.0.1:4222", "NATS URL (the API's embedded server by default)")
	s.String(&c.DynamicDir, "dynamic-dir", "BERTH_TRAEFIK_DYNAMIC_DIR", "data/traefik/dynamic", "directory Traefik's file provider watches")
	s.String(&c.FileName, "file-name", "BERTH_TRAEFIK_FILE", "berth-workspaces.yml", "file router-sync owns in that directory")
	s.Routing(&c.Routing)
	s.String(&c.EntryPoint, "entrypoint", "BERTH_TRAEFIK_ENTRYPOINT", "web", "Traefik entry point of workspace routes")
	s.String(&c.AuthURL, "auth-url", "BERTH_AUTH_URL", "http://127.0.0.1:8080/api/v1/auth/forward", "the API's forwardAuth endpoint as Traefik reaches it")
	s.String(&c.Backend, "backend", "BERTH_ROUTE_BACKEND", "ip", "ip (Traefik on the host) or host (Traefik on the workspace network)")
	s.String(&c.APIURL, "api-url", "BERTH_ROUTE_API_URL", "", "also route /api/ to this API URL (one origin for API and workspaces)")
	s.Bool(&c.TLSStore, "default-cert", "BERTH_TRAEFIK_DEFAULT_CERT", true, "write a generated default certificate for Traefik's default TLS store (berth-default-cert.yml, once): without one Traefik makes a new RSA key on every route change (40-150 ms each); turn off if you configure that store yourself")
	s.Common(&c.Common)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	if c.Backend != string(render.BackendIP) && c.Backend != string(render.BackendHost) {
		return c, fmt.Errorf("bad configuration: BERTH_ROUTE_BACKEND=%q: want ip or host", c.Backend)
	}
	for key, v := range map[string]string{"BERTH_AUTH_URL": c.AuthURL, "BERTH_ROUTE_API_URL": c.APIURL} {
		if v == "" && key == "BERTH_ROUTE_API_URL" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("bad configuration: %s=%q: want http(s)://host[:port][/path]", key, v)
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, out io.Writer, onReady func(addr string)) error {
	onReady = service.Once(onReady)
	c, err := parse(args, out)
	if err != nil {
		return err
	}
	scheme, err := wsurl.Parse(c.Routing.Mode, c.PublicURL, c.Domain)
	if err != nil {
		return fmt.Errorf("bad configuration: %w", err)
	}
	opts := render.Options{Mode: scheme.Mode, Domain: scheme.Domain, EntryPoint: c.EntryPoint, AuthURL: c.AuthURL, Backend: render.Backend(c.Backend), APIURL: c.APIURL,
		PublicHost: scheme.Public.Hostname()}
	p, err := service.Start("router-sync", out, c.Common, c.HTTPAddr, c.NATSURL)
	if err != nil {
		return err
	}
	defer p.Close()
	log, tel, ln, nc := p.Log, p.Tel, p.Listener, p.NATS

	synced := service.NewGate("routes not written yet")
	health := service.NewHealth(map[string]service.Check{"nats": natsbus.Ready(nc), "routes": synced.Check})
	srv := &http.Server{Handler: service.OpsHandler(health, tel.Handler), ReadHeaderTimeout: 10 * time.Second}

	sync := service.Actor{Name: "sync", Run: func(ctx context.Context) error {
		// Read-only: router-sync's bus identity may not create or append.
		l, err := eventlog.OpenWhenReady(ctx, nc, eventlog.Options{ReadOnly: true}, log)
		if err != nil {
			return err
		}
		w := &configdir.Writer{Dir: c.DynamicDir, Name: c.FileName}
		if n, err := w.RemoveStale(); err != nil {
			log.Warn("stale temp files not removed", "err", err)
		} else if n > 0 {
			log.Info("removed temp files of an interrupted write", "count", n)
		}
		if c.TLSStore {
			if err := defaultCert(c.DynamicDir); err != nil {
				return err
			}
		}
		proj := events.NewProjection()
		opts.KeepPrefix = func(image string) bool { img, _ := proj.Image(image); return img.Profile.KeepsPrefix() }
		s := &app.Syncer{Log: l, Projection: proj, Writer: w, Render: opts, Logger: log, Meter: p.Tel.Meter,
			File: filepath.Join(c.DynamicDir, c.FileName)}
		return s.Run(ctx, func() {
			synced.Open()
			onReady(ln.Addr().String())
		})
	}}
	return service.Run(ctx, log, c.ShutdownGrace, service.HTTPServer("http", srv, ln, c.ShutdownGrace), service.Supervised(log, sync))
}

// defaultCert writes the default TLS store's certificate, unless an earlier
// run did: one key for the life of the folder, not one per start. The file
// is 0644 like the routes, so a Traefik running as another user reads it
// (an unreadable file fails Traefik's whole reload); the key only signs a
// fallback certificate no client trusts (docs/security.md).
func defaultCert(dir string) error {
	const name = "berth-default-cert.yml"
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return nil
	}
	doc, err := render.DefaultTLSStore(time.Now())
	if err != nil {
		return err
	}
	if _, err := (&configdir.Writer{Dir: dir, Name: name}).Write(doc); err != nil {
		return fmt.Errorf("default certificate: %w", err)
	}
	return nil
}
