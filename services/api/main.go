// Command berth-api is Berth's HTTP API: it validates commands, appends
// their events to the log, and serves the projection folded from it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/activity"
	"github.com/berthdev/berth/pkg/platform/bus"
	"github.com/berthdev/berth/pkg/platform/config"
	"github.com/berthdev/berth/pkg/platform/enginestatus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/installation"
	"github.com/berthdev/berth/pkg/platform/natsbus"
	"github.com/berthdev/berth/pkg/platform/service"
	"github.com/berthdev/berth/pkg/platform/telemetry"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/api/internal/adapters"
	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
	"github.com/berthdev/berth/services/api/internal/devclients"
	"github.com/berthdev/berth/services/api/internal/httpapi"
	"github.com/berthdev/berth/services/api/internal/intake"
	"github.com/berthdev/berth/services/api/internal/names"
	"github.com/berthdev/berth/services/api/internal/oidclogin"
	"github.com/berthdev/berth/services/api/internal/sessions"
)

func main() { service.Main("berth-api", run) }

type cfg struct {
	HTTPAddr       string
	NATSURL        string
	NATSListen     string
	DataDir        string
	StreamReplicas int

	JWTSecret      string
	JWKSURL        string
	JWKSRefresh    time.Duration
	JWKSMinRefresh time.Duration
	Issuer         string
	Audience       string
	RolesClaim     string
	AdminRole      string
	UserRole       string
	AuditorRole    string
	DevTokens      bool
	DevClients     string

	ProjectsRoot  string
	DefaultImage  string
	DefaultMemory int64
	DefaultCPUs   float64
	DefaultPids   int
	DefaultDisk   int64
	Max           config.ResourceMax

	config.Routing

	LoginURL       string
	OIDC           oidcSettings
	CookieDomain   string
	SessionTTL     time.Duration
	Quotas         app.Quotas
	BodyLimit      string
	AppendTimeout  time.Duration
	Rate           float64
	Burst          int
	TrustedProxies string
	MaxStreams     int
	Idle           config.Lifecycle
	config.Common
}

func parse(args []string, out io.Writer) (cfg, error) {
	var c cfg
	s := config.New("berth-api", out)
	s.String(&c.HTTPAddr, "http-addr", "BERTH_HTTP_ADDR", "127.0.0.1:8080", "address the API listens on")
	s.String(&c.NATSURL, "nats-url", "BERTH_NATS_URL", "", "external NATS URL; empty starts an embedded NATS server")
	s.String(&c.NATSListen, "nats-listen", "BERTH_NATS_LISTEN", "127.0.0.1:4222", "client address of the embedded NATS server (other services connect here)")
	s.String(&c.DataDir, "data-dir", "BERTH_DATA_DIR", "data", "data directory (embedded NATS store, dev secret)")
	s.Int(&c.StreamReplicas, "stream-replicas", "BERTH_STREAM_REPLICAS", 1, "replicas of every stream and bucket Berth declares (3 on a three-node NATS cluster)")
	s.String(&c.JWTSecret, "jwt-secret", "BERTH_JWT_SECRET", "", "HS256 secret (32+ bytes) for bearer tokens")
	s.String(&c.JWKSURL, "jwks-url", "BERTH_JWKS_URL", "", "JWKS URL of your identity provider (RS256/ES256 tokens)")
	s.Duration(&c.JWKSRefresh, "jwks-refresh", "BERTH_JWKS_REFRESH", 5*time.Minute, "most time between JWKS fetches: a key the identity provider removed stops verifying within it (a shorter Cache-Control max-age wins)")
	s.Duration(&c.JWKSMinRefresh, "jwks-min-refresh", "BERTH_JWKS_MIN_REFRESH", 30*time.Second, "least time between JWKS fetches (also after an unknown key id or a failed fetch)")
	s.String(&c.Issuer, "jwt-issuer", "BERTH_JWT_ISSUER", "", "required token issuer (iss), if set")
	s.String(&c.Audience, "jwt-audience", "BERTH_JWT_AUDIENCE", "", "required token audience (aud), if set")
	s.String(&c.RolesClaim, "jwt-roles-claim", "BERTH_JWT_ROLES_CLAIM", "roles", "claim holding roles; dotted path for nested claims")
	s.String(&c.AdminRole, "admin-role", "BERTH_ADMIN_ROLE", "admin", "role name of administrators")
	s.String(&c.UserRole, "user-role", "BERTH_USER_ROLE", "user", "role name of users")
	s.String(&c.AuditorRole, "auditor-role", "BERTH_AUDITOR_ROLE", "auditor", "role name of auditors (read the whole audit log, nothing else)")
	s.Bool(&c.DevTokens, "dev-tokens", "BERTH_DEV_TOKENS", false, "enable POST /api/v1/dev/token (development only)")
	s.String(&c.DevClients, "dev-token-clients", "BERTH_DEV_TOKEN_CLIENTS", "", "who besides loopback may mint dev tokens: CIDRs, addresses, or \"gateway\" (this host's default gateway: the host, through a published port under compose)")
	s.String(&c.ProjectsRoot, "projects-root", "BERTH_PROJECTS_ROOT", "data/projects", "folder holding the project folders workspaces may mount")
	s.String(&c.DefaultImage, "default-image", "BERTH_DEFAULT_IMAGE", "berth/workspace-demo:latest", "image of the default template (must be in the catalog)")
	s.Bytes(&c.DefaultMemory, "default-memory", "BERTH_DEFAULT_MEMORY", 2<<30, "default memory limit")
	s.ResourceMax(&c.Max)
	s.Float(&c.DefaultCPUs, "default-cpus", "BERTH_DEFAULT_CPUS", 0.5, "default CPU limit in cores")
	s.Int(&c.DefaultPids, "default-pids", "BERTH_DEFAULT_PIDS", 512, "default process limit")
	s.Bytes(&c.DefaultDisk, "default-disk", "BERTH_DEFAULT_DISK", 10<<30, "default disk limit: writable layer plus home volume (the provisioner warns, then stops a workspace over it)")
	s.Routing(&c.Routing)
	s.String(&c.LoginURL, "login-url", "BERTH_LOGIN_URL", "", "where browsers without a session are sent to sign in (default: the public URL)")
	s.String(&c.OIDC.Issuer, "oidc-issuer", "BERTH_OIDC_ISSUER", "", "issuer URL of your identity provider for the browser sign-in (OpenID Connect, authorization code with PKCE); empty: no such sign-in")
	s.String(&c.OIDC.ClientID, "oidc-client-id", "BERTH_OIDC_CLIENT_ID", "", "Berth's client id at the identity provider")
	s.String(&c.OIDC.ClientSecret, "oidc-client-secret", "BERTH_OIDC_CLIENT_SECRET", "", "its client secret (empty for a public client)")
	s.String(&c.OIDC.RedirectURL, "oidc-redirect-url", "BERTH_OIDC_REDIRECT_URL", "", "the callback registered at the provider (default: <public URL>/ui/oidc/callback)")
	s.String(&c.OIDC.Scopes, "oidc-scopes", "BERTH_OIDC_SCOPES", "openid profile email", "scopes asked for (space-separated)")
	s.String(&c.OIDC.Name, "oidc-name", "BERTH_OIDC_NAME", "your organisation's account", "how the sign-in button names the provider")
	s.String(&c.OIDC.StateKey, "oidc-state-key", "BERTH_OIDC_STATE_KEY", "", "32+ byte key signing the sign-in's state cookie, the same on every API replica (default: generated once into the data dir)")
	s.String(&c.CookieDomain, "cookie-domain", "BERTH_COOKIE_DOMAIN", "", "domain of the session cookie in path mode (default: host-only; refused in subdomain mode, where it stays on the public host)")
	s.Duration(&c.SessionTTL, "session-ttl", "BERTH_SESSION_TTL", 8*time.Hour, "how long a browser session lasts (ended earlier by logout or an admin)")
	s.Int(&c.Quotas.Workspaces, "quota-workspaces", "BERTH_QUOTA_WORKSPACES", 10, "workspaces each user may have (deleted ones do not count; 0: no limit; admins set per-user limits)")
	s.Int(&c.Quotas.Running, "quota-running", "BERTH_QUOTA_RUNNING", 2, "workspaces each user may have starting or running at once (0: no limit)")
	s.String(&c.BodyLimit, "body-limit", "BERTH_BODY_LIMIT", "64K", "largest request body")
	s.Duration(&c.AppendTimeout, "append-timeout", "BERTH_APPEND_TIMEOUT", 5*time.Second, "how long a request waits for the log before answering 503")
	s.Float(&c.Rate, "api-rate", "BERTH_API_RATE", 20, "requests per second each caller (token subject, else client address) may make to /api/v1 on average; 0 disables the limit")
	s.String(&c.TrustedProxies, "trusted-proxies", "BERTH_TRUSTED_PROXIES", "", "proxies (CIDRs, addresses, \"gateway\") whose X-Forwarded-For names the client for rate limits, besides loopback (compose: gateway, Traefik reaching the published port)")
	s.Int(&c.MaxStreams, "max-streams", "BERTH_MAX_STREAMS", httpapi.DefaultMaxStreams, "progress streams (the dashboard's launch progress) one user may hold open at once; more: 429 too_many_streams")
	s.Int(&c.Burst, "api-burst", "BERTH_API_BURST", 40, "requests a caller may make at once before BERTH_API_RATE applies")
	s.IdleBounds(&c.Idle)
	s.Common(&c.Common)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	if err := c.validateRate(); err != nil {
		return c, err
	}
	if err := c.Idle.Validate(); err != nil {
		return c, err
	}
	if c.JWKSMinRefresh < time.Second || c.JWKSRefresh < c.JWKSMinRefresh {
		return c, fmt.Errorf("bad configuration: want 1s <= BERTH_JWKS_MIN_REFRESH (%s) <= BERTH_JWKS_REFRESH (%s)", c.JWKSMinRefresh, c.JWKSRefresh)
	}
	if c.Quotas.Workspaces < 0 || c.Quotas.Running < 0 {
		return c, errors.New("bad configuration: BERTH_QUOTA_WORKSPACES and BERTH_QUOTA_RUNNING must be >= 0 (0: no limit)")
	}
	if c.SessionTTL < time.Minute {
		return c, fmt.Errorf("bad configuration: BERTH_SESSION_TTL must be at least 1m, got %s", c.SessionTTL)
	}
	if c.DefaultMemory > c.Max.MemoryBytes || c.DefaultCPUs > c.Max.CPUs || c.DefaultPids > c.Max.Pids || c.DefaultDisk > c.Max.DiskBytes {
		return c, errors.New("bad configuration: a default resource limit exceeds its maximum")
	}
	return c, nil
}

func (c cfg) validateRate() error {
	switch {
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("bad configuration: BERTH_API_RATE must be a number >= 0 (0 disables the limit), got %v", c.Rate)
	case c.Rate > 0 && c.Burst < 1:
		return fmt.Errorf("bad configuration: BERTH_API_BURST must be at least 1, got %d", c.Burst)
	case c.MaxStreams < 1:
		return fmt.Errorf("bad configuration: BERTH_MAX_STREAMS must be at least 1, got %d", c.MaxStreams)
	}
	return nil
}

// run is the composition root; onReady (tests) learns the bound address
// once the log is replayed and the API serves.
func run(ctx context.Context, args []string, out io.Writer, onReady func(addr string)) error {
	onReady = service.Once(onReady)
	c, err := parse(args, out)
	if err != nil {
		return err
	}
	scheme, err := wsurl.Parse(c.Routing.Mode, c.PublicURL, c.Domain)
	if err != nil {
		return err
	}
	for what, dir := range map[string]string{"data dir": c.DataDir, "projects root": c.ProjectsRoot} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	var keys *auth.KeySet // JWKS mode: refreshed in the background (an actor below)
	if c.JWKSURL != "" {
		keys = auth.NewKeySet(c.JWKSURL, auth.KeySetOptions{MinRefresh: c.JWKSMinRefresh, MaxRefresh: c.JWKSRefresh})
	}
	o, err := edgeOptions(c, scheme, keys) // bad settings fail before anything starts
	if err != nil {
		return err
	}
	natsURL, emb, passwords, err := startBus(&c)
	if err != nil {
		return err
	}
	if emb != nil {
		defer func() { emb.Shutdown(); emb.WaitForShutdown() }() // deferred first, so it runs last: after every client is closed
	}
	p, err := service.Start("api", out, c.Common, c.HTTPAddr, natsURL)
	if err != nil {
		return err
	}
	defer p.Close()
	log, tel, ln, nc := p.Log, p.Tel, p.Listener, p.NATS
	if c.NATSURL == "" {
		log.Info("embedded nats started", "url", natsURL, "store", filepath.Join(c.DataDir, "nats"))
	}

	replayed := service.NewGate("log not replayed yet")
	backend, sink := &httpapi.Backend{}, &activitySink{}
	o.Backend, o.Activity = backend, sink
	o.Health = service.NewHealth(map[string]service.Check{"nats": natsbus.Ready(nc), "log": replayed.Check})
	o.Metrics, o.Log, o.TracerProvider, o.Meter = tel.Handler, log, tel.TracerProvider, tel.Meter
	// Headers are small (a token, a workspace app's cookies); 256 KiB bounds
	// what one request makes the API parse (Go answers 431 beyond it).
	srv := &http.Server{Handler: httpapi.New(o), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 256 << 10}

	core := service.Actor{Name: "log", Run: func(ctx context.Context) error {
		if err := serve(ctx, c, p, backend, sink, emb, passwords); err != nil {
			return err
		}
		replayed.Open()
		log.Info("api ready", "addr", ln.Addr().String(), "nats", natsURL, "dev_tokens", c.DevTokens)
		if c.DevTokens {
			printDevHelp(out, ln.Addr().String())
		}
		onReady(ln.Addr().String())
		<-ctx.Done()
		return nil
	}}
	actors := []service.Actor{service.HTTPServer("http", srv, ln, c.ShutdownGrace), service.Supervised(log, core)}
	if keys != nil {
		actors = append(actors, jwksActor(c, keys, log))
	}
	return service.Run(ctx, log, c.ShutdownGrace, actors...)
}

// serve opens the log and hands the use cases to the HTTP edge, which
// answers 503 until then.
func serve(ctx context.Context, c cfg, p *service.Process, backend *httpapi.Backend, sink *activitySink, emb *natsbus.Embedded, passwords map[string]string) error {
	k, err := openCore(ctx, c, p.NATS, p.Tel, p.Log)
	if err != nil {
		return err
	}
	sink.p.Store(k.tracker)
	backend.SetSessions(k.store)
	backend.Set(k.svc)
	if emb != nil {
		go keepSystemUsers(ctx, emb, passwords, k, p.Log)
	}
	return nil
}

// startBus starts the embedded NATS unless BERTH_NATS_URL names one, and
// returns the URL to connect to, the server (nil: external) and the
// services' passwords. The bus always asks
// for credentials: one identity per service (natsbus.Permissions),
// passwords generated on first start; the API's goes into c.
func startBus(c *cfg) (string, *natsbus.Embedded, map[string]string, error) {
	if c.NATSURL != "" {
		return c.NATSURL, nil, nil, nil
	}
	passwords, err := natsbus.EnsurePasswords(c.DataDir)
	if err != nil {
		return "", nil, nil, err
	}
	if c.NATSPassword == "" && c.NATSPasswordFile == "" {
		c.NATSPassword = passwords["api"]
	}
	srv, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: c.NATSListen, StoreDir: filepath.Join(c.DataDir, "nats"), Users: natsbus.Users(passwords)})
	if err != nil {
		return "", nil, nil, err
	}
	return srv.ClientURL(), srv, passwords, nil
}

// edgeOptions are the HTTP edge's settings that come from configuration,
// its token verifier among them.
func edgeOptions(c cfg, scheme wsurl.Scheme, keys *auth.KeySet) (httpapi.Options, error) {
	verifier, issuer, err := buildAuth(c, keys)
	if err != nil {
		return httpapi.Options{}, err
	}
	loginURL, cookieDomain := c.LoginURL, c.CookieDomain
	if loginURL == "" {
		loginURL = scheme.Public.String() + "/"
	}
	var workspaceDomain string
	if scheme.Mode == wsurl.ModeSubdomain {
		if cookieDomain != "" {
			// A session cookie that reaches <name>.<domain> lets a workspace's
			// page act as whoever opens it (docs/security.md).
			return httpapi.Options{}, fmt.Errorf("bad configuration: BERTH_COOKIE_DOMAIN=%s: in subdomain mode the session cookie stays on the public host (workspace hosts get their own); unset it", cookieDomain)
		}
		workspaceDomain = scheme.Domain
	}
	devClients, err := devclients.Parse(c.DevClients, devclients.ProcRoute)
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("bad configuration: BERTH_DEV_TOKEN_CLIENTS: %w", err)
	}
	proxies, err := devclients.Parse(c.TrustedProxies, devclients.ProcRoute)
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("bad configuration: BERTH_TRUSTED_PROXIES: %w", err)
	}
	login, err := c.OIDC.login(c, scheme)
	if err != nil {
		return httpapi.Options{}, fmt.Errorf("bad configuration: BERTH_OIDC_*: %w", err)
	}
	return httpapi.Options{Verifier: verifier, DevIssuer: issuer, DevClients: devClients, URLFor: scheme.URL, BodyLimit: c.BodyLimit,
		LoginURL: loginURL, OIDC: login, OIDCName: c.OIDC.Name, CookieDomain: cookieDomain, CookieSecure: scheme.Public.Scheme == "https",
		WorkspaceDomain: workspaceDomain,
		PublicHost:      scheme.Public.Host, SessionAdmin: scheme.Mode == wsurl.ModeSubdomain,
		RatePerSecond: c.Rate, RateBurst: c.Burst, TrustedProxies: proxies, MaxStreams: c.MaxStreams}, nil
}

// jwksActor refreshes the identity provider's keys in the background.
func jwksActor(c cfg, keys *auth.KeySet, log *slog.Logger) service.Actor {
	if c.Audience == "" {
		log.Warn("no token audience configured (BERTH_JWT_AUDIENCE): any token your identity provider signs for any application is accepted; set it to the audience it issues for Berth")
	}
	keys.SetLogger(log)
	return service.Actor{Name: "jwks", Run: keys.Run}
}

// openCore opens the log (retrying while NATS is unreachable: the HTTP
// server already answers 503 meanwhile), replays it into the projection and
// returns the use cases.
func openCore(ctx context.Context, c cfg, nc *nats.Conn, tel *telemetry.Telemetry, log *slog.Logger) (*core, error) {
	l, err := eventlog.OpenWhenReady(ctx, nc, eventlog.Options{Replicas: c.StreamReplicas, SessionTTL: c.SessionTTL, Meter: tel.Meter}, log)
	if err != nil {
		return nil, err
	}
	own := l.JetStream() // the log's Open declared every bucket (bus.Declare)
	k := &core{}
	b, err := openBuckets(ctx, own, c, log)
	if err != nil {
		return nil, err
	}
	// Generated here on first start: the other identities may not write
	// the installation bucket.
	inst, err := installation.Resolve(ctx, own, "")
	if err != nil {
		return nil, err
	}
	proj := events.NewProjection()
	start := time.Now()
	if err := l.Replay(ctx, log, proj); err != nil {
		return nil, err
	}
	log.Info("log replayed", "last_seq", proj.LastSequence(), "workspaces", len(proj.Workspaces(nil)), "took", time.Since(start), "installation", inst)
	k.tracker, k.store, k.creds = b.tracker, b.store, adapters.NewCredentials(b.systems)
	k.svc = app.New(adapters.NewLog(l), proj, b.names, app.Options{
		ProjectsRoot:   c.ProjectsRoot,
		DefaultImage:   c.DefaultImage,
		AppendTimeout:  c.AppendTimeout,
		Engine:         adapters.NewEngine(b.board),
		Credentials:    k.creds,
		Seen:           adapters.NewSeen(b.seen),
		IdleTimeoutMin: c.Idle.IdleTimeoutMin,
		IdleTimeoutMax: c.Idle.IdleTimeoutMax,
		Quotas:         c.Quotas,
		Logs:           adapters.Logs{NC: nc},
		Bounds: app.Bounds{
			Default: events.Resources{MemoryBytes: c.DefaultMemory, MilliCPUs: int64(c.DefaultCPUs * 1000), Pids: int64(c.DefaultPids), DiskBytes: c.DefaultDisk},
			Max:     events.Resources{MemoryBytes: c.Max.MemoryBytes, MilliCPUs: int64(c.Max.CPUs * 1000), Pids: int64(c.Max.Pids), DiskBytes: c.Max.DiskBytes},
		},
	})
	if err := k.subscribe(ctx, nc, proj, l, log); err != nil {
		return nil, err
	}
	return k, nil
}

// core is what the API serves once the log is open.
type core struct {
	svc     *app.Service
	tracker *activity.Tracker
	store   *sessions.Store
	creds   adapters.Credentials
}

// subscribe takes other systems' messages: activity reports and workspace
// commands, until ctx ends.
func (k *core) subscribe(ctx context.Context, nc *nats.Conn, proj *events.Projection, l *eventlog.Log, log *slog.Logger) error {
	activitySub, err := intake.Activity(nc, proj, k.tracker, l, time.Now, log)
	if err != nil {
		return err
	}
	commandSub, err := intake.Workspace(nc, k.svc, l, log)
	if err != nil {
		_ = activitySub.Unsubscribe()
		return err
	}
	context.AfterFunc(ctx, func() { _ = activitySub.Unsubscribe(); _ = commandSub.Unsubscribe() })
	// The server has both subscriptions before the API says it is ready:
	// a message sent right after is taken, not missed.
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("subscribe to the intake: %w", err)
	}
	return nil
}

// buckets are the API's handles on the buckets bus.Declare declared.
type buckets struct {
	names         *names.Registry
	board         *enginestatus.Board
	tracker       *activity.Tracker
	store         *sessions.Store
	systems, seen jetstream.KeyValue
}

func openBuckets(ctx context.Context, js jetstream.JetStream, c cfg, log *slog.Logger) (b buckets, err error) {
	if b.names, err = names.Open(ctx, js); err != nil {
		return b, err
	}
	if b.board, err = enginestatus.Open(ctx, js); err != nil {
		return b, err
	}
	if b.tracker, err = activity.Open(ctx, js, 30*time.Second, log); err != nil {
		return b, err
	}
	if b.store, err = sessions.Open(ctx, js, c.SessionTTL, time.Now); err != nil {
		return b, err
	}
	if b.systems, err = bus.Bucket(ctx, js, events.SystemsBucket); err != nil {
		return b, err
	}
	b.seen, err = bus.Bucket(ctx, js, events.IntakeBucket)
	return b, err
}

// activitySink forwards activity to the tracker once the log is open.
type activitySink struct {
	p atomic.Pointer[activity.Tracker]
}

func (a *activitySink) Touch(id string, now time.Time) {
	if t := a.p.Load(); t != nil {
		t.Touch(id, now)
	}
}

func (a *activitySink) LastSeen(ctx context.Context, id string) (time.Time, bool, error) {
	if t := a.p.Load(); t != nil {
		return t.LastSeen(ctx, id)
	}
	return time.Time{}, false, nil
}

// buildAuth picks JWKS or HS256 verification. With dev tokens on and no
// secret configured it creates one in the data dir, so `make run` works
// with no setup and tokens survive restarts.
func buildAuth(c cfg, keys *auth.KeySet) (*auth.Verifier, *auth.Issuer, error) {
	o := auth.Options{Issuer: c.Issuer, Audience: c.Audience, RolesClaim: c.RolesClaim, AdminRole: c.AdminRole, UserRole: c.UserRole, AuditorRole: c.AuditorRole}
	if c.JWKSURL != "" {
		if c.DevTokens {
			return nil, nil, errors.New("bad configuration: BERTH_DEV_TOKENS needs an HS256 secret, not BERTH_JWKS_URL")
		}
		return auth.NewJWKS(keys, o), nil, nil
	}
	secret := []byte(c.JWTSecret)
	if len(secret) == 0 {
		if !c.DevTokens {
			return nil, nil, errors.New("bad configuration: set BERTH_JWT_SECRET (32+ bytes) or BERTH_JWKS_URL; to try Berth out, set BERTH_DEV_TOKENS=true")
		}
		var err error
		if secret, err = devSecret(filepath.Join(c.DataDir, "dev-jwt-secret")); err != nil {
			return nil, nil, err
		}
	}
	v, err := auth.NewHS256(secret, o)
	if err != nil {
		return nil, nil, fmt.Errorf("bad configuration: %w", err)
	}
	var issuer *auth.Issuer
	if c.DevTokens {
		issuer = auth.NewIssuer(secret, o)
	}
	return v, issuer, nil
}

// oidcSettings configure the browser sign-in with the identity provider.
type oidcSettings struct {
	Issuer, ClientID, ClientSecret, RedirectURL, Scopes, Name, StateKey string
}

// login is the sign-in these settings describe (nil: none configured).
// Roles come from the ID token's claims, mapped as bearer tokens' are
// (BERTH_JWT_ROLES_CLAIM, BERTH_ADMIN_ROLE, ...).
func (o oidcSettings) login(c cfg, scheme wsurl.Scheme) (*oidclogin.Login, error) {
	if o.Issuer == "" {
		return nil, nil
	}
	redirect := o.RedirectURL
	if redirect == "" {
		redirect = scheme.Public.String() + "/ui/oidc/callback"
	}
	key := []byte(o.StateKey)
	if len(key) == 0 {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, err
		}
		var err error
		if key, err = devSecret(filepath.Join(c.DataDir, "oidc-state-key")); err != nil {
			return nil, err
		}
	}
	roles := auth.Options{RolesClaim: c.RolesClaim, AdminRole: c.AdminRole, UserRole: c.UserRole, AuditorRole: c.AuditorRole}
	return oidclogin.New(oidclogin.Config{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: o.ClientSecret, RedirectURL: redirect,
		Scopes: strings.Fields(o.Scopes), StateKey: key, Claims: roles.Principal,
		// Sign-ins are rare: no idle connections kept to the provider.
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment}}})
}

func devSecret(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("generate dev secret: %w", err)
	}
	secret := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write dev secret: %w", err)
	}
	return []byte(secret), nil
}

func printDevHelp(w io.Writer, addr string) {
	fmt.Fprintf(w, `
  Berth API is up on http://%[1]s  (development tokens enabled)

  Get a token:
    TOKEN=$(curl -s --json '{"sub":"alice","roles":["admin"]}' http://%[1]s/api/v1/dev/token | sed 's/.*"token":"\([^"]*\)".*/\1/')
  Then:
    curl -s -H "Authorization: Bearer $TOKEN" http://%[1]s/api/v1/workspaces
  API document: http://%[1]s/api/v1/openapi.yaml

`, addr)
}
