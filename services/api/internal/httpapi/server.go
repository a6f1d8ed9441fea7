// Package httpapi is the API's HTTP edge: Echo routes, bearer auth, problem
// JSON errors, and the OpenAPI document that describes all of it.
package httpapi

import (
	"context"
	_ "embed"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/service"
	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
	"github.com/berthdev/berth/services/api/internal/devclients"
	"github.com/berthdev/berth/services/api/internal/oidclogin"
	"github.com/berthdev/berth/services/api/internal/ratelimit"
	"github.com/berthdev/berth/services/api/internal/sessions"
)

//go:embed openapi.yaml
var OpenAPI []byte

// Workspaces is what the handlers need from the use cases.
type Workspaces interface {
	Create(ctx context.Context, c app.Caller, in app.CreateInput) (events.Workspace, error)
	Update(ctx context.Context, c app.Caller, id string, in app.UpdateInput) (events.Workspace, error)
	Start(ctx context.Context, c app.Caller, id string) (events.Workspace, error)
	Stop(ctx context.Context, c app.Caller, id string) (events.Workspace, error)
	Delete(ctx context.Context, c app.Caller, id string, mode app.DeleteMode) (events.Workspace, error)
	Launch(ctx context.Context, c app.Caller, in app.LaunchInput) (events.Workspace, bool, error)
	Get(ctx context.Context, c app.Caller, id string) (events.Workspace, error)
	List(ctx context.Context, c app.Caller, f app.ListFilter) []events.Workspace
	History(ctx context.Context, c app.Caller, id string, after uint64, limit int) (app.HistoryPage, error)
	Authorize(ctx context.Context, c app.Caller, id string) (events.Workspace, error)
	Lifecycle(ctx context.Context, c app.Caller, id string, in app.LifecycleInput) (events.Workspace, error)
	Restore(ctx context.Context, c app.Caller, id string) (events.Workspace, error)
	AddImage(ctx context.Context, c app.Caller, in app.ImageInput) (events.CatalogImage, error)
	RemoveImage(ctx context.Context, c app.Caller, ref string) error
	UpdateImage(ctx context.Context, c app.Caller, ref string, in app.ImageUpdate) (events.CatalogImage, error)
	Images() ([]events.CatalogImage, string)
	Quota(c app.Caller, subject string) (app.Quota, error)
	SetQuota(ctx context.Context, c app.Caller, subject string, in app.QuotaInput) (app.Quota, error)
	DeadLetters(ctx context.Context, c app.Caller, after uint64, limit int) (app.DeadLetterPage, error)
	DeadLetter(ctx context.Context, c app.Caller, seq uint64) (app.DeadLetter, error)
	RetryDeadLetter(ctx context.Context, c app.Caller, seq uint64) (app.Redriven, error)
	Audit(ctx context.Context, c app.Caller, q app.AuditQuery) (app.AuditPage, error)
	Export(ctx context.Context, c app.Caller, since, until time.Time, w io.Writer) error
	WorkspaceAt(ctx context.Context, c app.Caller, id string, at time.Time) (app.StateAt, error)
	Logs(ctx context.Context, c app.Caller, id string, tail int, timestamps bool) (app.Logs, error)
	AwaitChange(ctx context.Context, c app.Caller, id string, after uint64) (events.Workspace, error)
	Projects(c app.Caller) ([]string, error)
	Systems(c app.Caller) ([]app.RegisteredSystem, error)
	RegisterSystem(ctx context.Context, c app.Caller, in app.SystemInput) (app.RegisteredSystem, error)
	RevokeSystem(ctx context.Context, c app.Caller, name string) error
}

// Sessions is what the edge needs from the browser session store.
type Sessions interface {
	Create(ctx context.Context, p auth.Principal) (string, sessions.Session, error)
	Lookup(ctx context.Context, cookie string) (sessions.Session, error)
	End(ctx context.Context, cookie string) error
	EndAll(ctx context.Context, subject string) (int, error)
	// Ticket, Redeem and Access carry a session to a workspace's own host
	// (subdomain mode, handshake.go).
	Ticket(ctx context.Context, cookie, workspaceID, host string) (string, error)
	Redeem(ctx context.Context, ticket, workspaceID, host string) (string, sessions.Session, error)
	Access(ctx context.Context, cookie, workspaceID, host string) (sessions.Session, error)
}

// Backend holds the use cases once the log is open; until then every API
// route answers 503, while health and metrics already work.
type Backend struct {
	p        atomic.Pointer[Workspaces]
	sessions atomic.Pointer[Sessions]
}

// Set makes the use cases available.
func (b *Backend) Set(w Workspaces) { b.p.Store(&w) }

// SetSessions makes the session store available.
func (b *Backend) SetSessions(s Sessions) { b.sessions.Store(&s) }

func (b *Backend) sessionStore() (Sessions, error) {
	p := b.sessions.Load()
	if p == nil {
		return nil, problem(http.StatusServiceUnavailable, app.CodeUnavailable,
			"Sessions are kept in NATS, which the API cannot reach yet. Please contact your administrator if this persists.")
	}
	return *p, nil
}

func (b *Backend) get() (Workspaces, error) {
	p := b.p.Load()
	if p == nil {
		return nil, problem(http.StatusServiceUnavailable, app.CodeUnavailable,
			"The event log (NATS JetStream) is not reachable from the API yet. Please contact your administrator if this persists.")
	}
	return *p, nil
}

// Options wire the server.
type Options struct {
	Backend  *Backend
	Verifier *auth.Verifier
	// DevIssuer enables POST /api/v1/dev/token when set (development only).
	DevIssuer *auth.Issuer
	// DevClients may mint development tokens besides loopback peers.
	DevClients devclients.Allowed
	// URLFor returns the browser URL of a workspace by name.
	URLFor         func(name string) string
	Health         *service.Health
	Metrics        http.Handler
	Log            *slog.Logger
	TracerProvider trace.TracerProvider
	Meter          metric.Meter
	BodyLimit      string
	Now            func() time.Time
	// Activity receives a signal for every request forwardAuth allows, every
	// heartbeat and every workspace call by its owner.
	Activity Activity
	// LoginURL is where unauthenticated browsers are sent to sign in.
	LoginURL string
	// OIDC, when set, signs browsers in with the identity provider
	// OIDCName names (on the sign-in button).
	OIDC     *oidclogin.Login
	OIDCName string
	// CookieDomain scopes the session cookie (the parent domain in
	// subdomain mode); CookieSecure marks it Secure (HTTPS deployments).
	CookieDomain string
	CookieSecure bool
	// WorkspaceDomain is set in subdomain mode: workspaces are
	// <name>.<WorkspaceDomain>. The session cookie then stays on PublicHost
	// (host-only), the API takes it on no other host, and each workspace
	// host gets an access cookie of its own through a redirect handshake.
	WorkspaceDomain string
	// PublicHost is the host (and port) browsers reach Berth at; a request
	// authenticated by the session cookie that changes something must come
	// from a page of this origin (see sameOrigin).
	PublicHost string
	// SessionAdmin lets the session cookie carry the admin role on the API.
	// Off in path mode, where every workspace shares the API's origin: a
	// page of a user's workspace that an admin opens could otherwise call
	// admin routes with the admin's cookie (docs/security.md).
	SessionAdmin bool
	// RatePerSecond and RateBurst are each caller's token bucket on the
	// /api/v1 routes (forwardAuth excepted); RatePerSecond 0 disables it.
	// RateCallers bounds the buckets kept (0: ratelimit.DefaultMaxCallers).
	RatePerSecond float64
	RateBurst     int
	RateCallers   int
	// TrustedProxies may say who their client is in X-Forwarded-For
	// (Traefik); loopback always may (clientaddr.go).
	TrustedProxies devclients.Allowed
	// MaxStreams bounds the progress streams one caller holds open at once
	// (0: DefaultMaxStreams).
	MaxStreams int
}

// New returns the Echo server with every route registered.
func New(o Options) *echo.Echo {
	if o.BodyLimit == "" {
		o.BodyLimit = "64K"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(o.Log)
	// Echo's own client address is the TCP peer; the rate limit keys
	// unauthenticated calls by clientIP, which takes X-Forwarded-For only
	// from trusted proxies.
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(requestID, otelecho.Middleware("berth-api", otelecho.WithTracerProvider(o.TracerProvider)), observe(o.Log, o.Meter), recoverPanics(o.Log), middleware.BodyLimit(o.BodyLimit))

	e.GET("/healthz", echo.WrapHandler(http.HandlerFunc(o.Health.Live)))
	e.GET("/readyz", echo.WrapHandler(http.HandlerFunc(o.Health.Ready)))
	e.GET("/metrics", echo.WrapHandler(o.Metrics))

	h := &handlers{o: o, streams: newStreamSlots(o.MaxStreams)}
	limited := rateLimit(o)
	// No group middleware: Echo would register a catch-all for the group and
	// answer 404 where 405 (wrong method) or a real route is the truth.
	v1 := e.Group("/api/v1")
	v1.GET("/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", OpenAPI) }, limited...)
	v1.GET("/schemas/:type", intakeSchema, limited...) // public, like this document: what other systems send
	if o.DevIssuer != nil {
		v1.POST("/dev/token", h.devToken, limited...)
	}
	// Not rate limited: Traefik calls it for every request to a workspace,
	// and a page load is dozens of them.
	v1.GET("/auth/forward", h.forward)
	// Logout needs no valid session: it ends what the cookie names, if
	// anything, and always clears the cookie.
	v1.DELETE("/auth/session", h.deleteSession, limited...)

	// Auth is per route, for the same reason: as group middleware it would
	// answer 401 for paths that do not exist. The limiter sits between
	// identify and requireUser, so refused tokens are limited too.
	chain := append(append([]echo.MiddlewareFunc{identify(o)}, limited...), requireUser)
	authed := func(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		v1.Add(method, path, h, append(slices.Clone(chain), m...)...)
	}
	h.routes(authed)
	// The audit routes also let in auditors (who are not users); the use
	// cases decide what each caller may read.
	reader := append(append([]echo.MiddlewareFunc{identify(o)}, limited...), requireReader)
	v1.GET("/audit", h.audit, reader...)
	v1.GET("/audit/export", h.auditExport, reader...)
	v1.GET("/workspaces/:id/state", h.workspaceState, reader...)
	h.webRoutes(e, limited)
	return e
}

// routes registers the routes that need a user (authed adds identify, the
// limiter and requireUser; m are the route's own middleware).
func (h *handlers) routes(authed func(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc)) {
	authed(http.MethodGet, "/me", h.me)
	authed(http.MethodPost, "/auth/session", h.createSession)
	authed(http.MethodDelete, "/users/:subject/sessions", h.endUserSessions, requireAdmin)
	authed(http.MethodGet, "/users/:subject/quota", h.getQuota)
	authed(http.MethodPut, "/users/:subject/quota", h.setQuota, requireAdmin)
	authed(http.MethodGet, "/systems", h.listSystems, requireAdmin)
	authed(http.MethodPost, "/systems", h.registerSystem, requireAdmin)
	authed(http.MethodDelete, "/systems/:name", h.revokeSystem, requireAdmin)
	authed(http.MethodGet, "/deadletters", h.deadLetters, requireAdmin)
	authed(http.MethodGet, "/deadletters/:seq", h.deadLetter, requireAdmin)
	authed(http.MethodPost, "/deadletters/:seq/retry", h.retryDeadLetter, requireAdmin)
	authed(http.MethodGet, "/images", h.listImages)
	authed(http.MethodPost, "/images", h.addImage, requireAdmin)
	authed(http.MethodPatch, "/images/:ref", h.updateImage, requireAdmin)
	authed(http.MethodDelete, "/images/:ref", h.removeImage, requireAdmin)
	authed(http.MethodGet, "/workspaces", h.listWorkspaces)
	authed(http.MethodPost, "/workspaces", h.createWorkspace)
	authed(http.MethodPost, "/workspaces/launch", h.launch)
	authed(http.MethodGet, "/workspaces/:id", h.getWorkspace)
	authed(http.MethodPatch, "/workspaces/:id", h.updateWorkspace)
	authed(http.MethodDelete, "/workspaces/:id", h.deleteWorkspace)
	authed(http.MethodPost, "/workspaces/:id/start", h.startWorkspace)
	authed(http.MethodPost, "/workspaces/:id/stop", h.stopWorkspace)
	authed(http.MethodGet, "/workspaces/:id/events", h.workspaceEvents)
	authed(http.MethodGet, "/workspaces/:id/logs", h.workspaceLogs)
	authed(http.MethodPatch, "/workspaces/:id/lifecycle", h.setLifecycle)
	authed(http.MethodPost, "/workspaces/:id/restore", h.restoreWorkspace)
	authed(http.MethodPost, "/workspaces/:id/activity", h.heartbeat)
}

// rateLimit is the per-caller limiter as middleware: none when disabled.
func rateLimit(o Options) []echo.MiddlewareFunc {
	if o.RatePerSecond <= 0 {
		return nil
	}
	return []echo.MiddlewareFunc{limit(ratelimit.New(o.RatePerSecond, max(o.RateBurst, 1), o.RateCallers, o.Now), o.TrustedProxies)}
}
