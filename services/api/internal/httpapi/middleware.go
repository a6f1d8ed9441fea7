package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/berthdev/berth/pkg/platform/telemetry"
	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
	"github.com/berthdev/berth/services/api/internal/devclients"
	"github.com/berthdev/berth/services/api/internal/ratelimit"
	"github.com/berthdev/berth/services/api/internal/sessions"
)

// Context keys: the verified principal, or why the token was refused.
const (
	principalKey    = "berth.principal"
	adminDroppedKey = "berth.admin-dropped"
	authProblemKey  = "berth.auth_problem"
)

// clientRequestIDKey holds the X-Request-Id a client sent, if well formed.
const clientRequestIDKey = "berth.client_request_id"

// requestID gives every request an id Berth generates: it becomes the
// correlation id of the events the request causes, which stay in the log
// forever, so a client must not choose it (a 500 KB id was stored once).
// A well-formed id the client sent (up to 64 letters, digits, '.', '_',
// ':' or '-') is kept beside it: logged as client_request_id and echoed
// as X-Client-Request-Id. Anything else is dropped.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if id := c.Request().Header.Get(echo.HeaderXRequestID); wellFormedID(id) {
			c.Set(clientRequestIDKey, id)
			c.Response().Header().Set("X-Client-Request-Id", id)
		}
		c.Response().Header().Set(echo.HeaderXRequestID, uuid.NewString())
		return next(c)
	}
}

func wellFormedID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._:-", r)) {
			return false
		}
	}
	return true
}

// identify verifies the caller and stores the principal, or the problem to
// answer with; requireUser then acts on it. They are two steps so the rate
// limiter between them can key on a verified subject. A bearer token wins;
// without one, the session cookie (a browser) counts, for changes only from
// a page of Berth's own origin. Identity comes only from the verified token
// or the server-side session: no header a client sends (X-Forwarded-User
// and the like) is ever trusted.
func identify(o Options) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if p, err := authenticate(o, c); err != nil {
				c.Set(authProblemKey, err)
			} else {
				c.Set(principalKey, p)
			}
			return next(c)
		}
	}
}

func authenticate(o Options, c echo.Context) (auth.Principal, error) {
	r := c.Request()
	cookie := o.sessionCookie(r)
	if _, ok := bearer(r); ok || cookie == "" {
		return verify(o.Verifier, r)
	}
	if o.subdomainMode() && !o.onPublicHost(r) {
		// Traefik routes the API only on the public host; this holds even
		// where a router, a proxy or a client sends another Host.
		return auth.Principal{}, problem(http.StatusForbidden, codeWrongHost,
			"the session cookie is accepted only at "+o.PublicHost+"; a workspace's host never acts with the platform session")
	}
	if o.tossedCookie(r) {
		o.clearTossed(c.Response())
		return auth.Principal{}, problem(http.StatusUnauthorized, codeSessionAmbiguous,
			"the browser sent two session cookies (one was set by another site, such as a workspace); both are cleared: sign in again")
	}
	if err := sameOrigin(r, o); err != nil {
		return auth.Principal{}, err
	}
	store, err := o.Backend.sessionStore()
	if err != nil {
		return auth.Principal{}, err
	}
	sess, err := store.Lookup(c.Request().Context(), cookie)
	switch {
	case errors.Is(err, sessions.ErrNoSession):
		return auth.Principal{}, problem(http.StatusUnauthorized, codeSessionEnded, "the session has ended; sign in again")
	case err != nil:
		return auth.Principal{}, problem(http.StatusServiceUnavailable, app.CodeUnavailable, "sessions cannot be read right now; retry")
	}
	p := sess.Principal()
	if !o.SessionAdmin {
		// Path mode: workspace pages share this origin; a page of a
		// workspace the visitor opens must not act with their admin or
		// audit rights.
		if p.Admin {
			c.Set(adminDroppedKey, true) // the dashboard says why admin tools are missing
		}
		p.Admin, p.Auditor = false, false
	}
	if !p.User && !p.Auditor {
		return auth.Principal{}, problem(http.StatusForbidden, app.CodeForbidden, "the session carries no role Berth knows (user, admin, auditor)")
	}
	return p, nil
}

// sameOrigin refuses a cookie-authenticated change that a page of another
// origin may have sent (CSRF). Browsers say where a request comes from in
// Sec-Fetch-Site (only same-origin and none, a typed URL or bookmark, may
// pass: in subdomain mode a workspace is same-site, not same-origin), and
// older ones in Origin, which must name Berth's own host. A request with
// neither is not from a browser: such clients send a bearer token.
func sameOrigin(r *http.Request, o Options) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	refuse := func(why string) error {
		return problem(http.StatusForbidden, codeCrossOrigin, why+"; changes authenticated by the session cookie must come from Berth's own pages (other clients send Authorization: Bearer)")
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		if site == "same-origin" || site == "none" {
			return nil
		}
		return refuse("the request came from a " + site + " page")
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return refuse("the request names no origin")
	}
	// Only the configured origin: the request's own Host names whatever
	// host it was sent to, a workspace's among them.
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !sameHost(u.Host, o.PublicHost, u.Scheme == "https") {
		return refuse("the request came from " + origin)
	}
	return nil
}

func verify(v *auth.Verifier, r *http.Request) (auth.Principal, error) {
	raw, ok := bearer(r)
	if !ok {
		return auth.Principal{}, problem(http.StatusUnauthorized, codeUnauthenticated, "send Authorization: Bearer <token>")
	}
	p, err := v.Verify(raw)
	switch {
	case errors.Is(err, auth.ErrExpired):
		return auth.Principal{}, problem(http.StatusUnauthorized, codeTokenExpired, "the token has expired; get a new one")
	case err != nil:
		return auth.Principal{}, problem(http.StatusUnauthorized, codeInvalidToken, "the token is not valid for this API")
	case !p.User && !p.Auditor:
		return auth.Principal{}, problem(http.StatusForbidden, app.CodeForbidden, "the token carries no role Berth knows (user, admin, auditor)")
	}
	return p, nil
}

// requireUser refuses requests identify found no user in.
func requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return requireRole(func(p auth.Principal) bool { return p.User }, "this route needs the user or admin role")(next)
}

// requireReader lets in users and auditors: the audit routes, where the use
// case decides what each may read.
func requireReader(next echo.HandlerFunc) echo.HandlerFunc {
	return requireRole(func(p auth.Principal) bool { return p.User || p.Auditor }, "this route needs the user, admin or auditor role")(next)
}

// requireRole refuses requests identify found no principal in (with its
// reason), or one without the role.
func requireRole(has func(auth.Principal) bool, missing string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err, _ := c.Get(authProblemKey).(error); err != nil {
				return err
			}
			p, ok := c.Get(principalKey).(auth.Principal)
			if !ok {
				return problem(http.StatusUnauthorized, codeUnauthenticated, "send Authorization: Bearer <token>")
			}
			if !has(p) {
				return problem(http.StatusForbidden, app.CodeForbidden, missing)
			}
			return next(c)
		}
	}
}

// limit spends a token of the caller's bucket: the verified subject's, else
// the client address's (unauthenticated calls and refused tokens). Over the
// limit it answers 429 with Retry-After in whole seconds.
func limit(l *ratelimit.Limiter, trusted devclients.Allowed) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ok, wait := l.Allow(callerKey(c, trusted))
			if ok {
				return next(c)
			}
			secs := retryAfterSeconds(wait)
			c.Response().Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			return problem(http.StatusTooManyRequests, codeRateLimited,
				fmt.Sprintf("too many requests from this caller; retry in %d s", secs))
		}
	}
}

// callerKey names the bucket; the prefixes keep a subject that looks like
// an address from sharing that address's bucket.
func callerKey(c echo.Context, trusted devclients.Allowed) string {
	if p, ok := c.Get(principalKey).(auth.Principal); ok {
		return "sub:" + p.Subject
	}
	return "ip:" + clientIP(c.Request(), trusted)
}

// retryAfterSeconds rounds up to whole seconds, at least 1 (Retry-After has
// no finer unit, and 0 would invite an immediate retry).
func retryAfterSeconds(d time.Duration) int64 {
	secs := int64(d / time.Second)
	if d%time.Second != 0 {
		secs++
	}
	return max(secs, 1)
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get(echo.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// caller builds the use-case caller from the verified principal, the request
// id and the current span.
func caller(c echo.Context) app.Caller {
	p, _ := c.Get(principalKey).(auth.Principal)
	tp, ts := telemetry.TraceContext(c.Request().Context())
	return app.Caller{
		Subject:       p.Subject,
		Admin:         p.Admin,
		Auditor:       p.Auditor,
		CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID),
		TraceParent:   tp,
		TraceState:    ts,
	}
}

// requireAdmin guards admin-only routes.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p, _ := c.Get(principalKey).(auth.Principal); !p.Admin {
			return problem(http.StatusForbidden, app.CodeForbidden, "this route needs the admin role")
		}
		return next(c)
	}
}

// observe measures and logs each request (otelecho, before it, traces it).
func observe(log *slog.Logger, meter metric.Meter) echo.MiddlewareFunc {
	duration, _ := meter.Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"), metric.WithDescription("HTTP request duration by route and status"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			ctx := req.Context()
			route := c.Path()
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			elapsed := time.Since(start)
			duration.Record(ctx, elapsed.Seconds(), metric.WithAttributes(
				attribute.String("http.request.method", req.Method),
				attribute.String("http.route", route),
				attribute.Int("http.response.status_code", status)))
			p, _ := c.Get(principalKey).(auth.Principal)
			attrs := []slog.Attr{slog.String("method", req.Method), slog.String("path", req.URL.Path), slog.Int("status", status),
				slog.Duration("duration", elapsed), slog.String("request_id", c.Response().Header().Get(echo.HeaderXRequestID)),
				slog.String("sub", p.Subject)}
			if id, ok := c.Get(clientRequestIDKey).(string); ok {
				attrs = append(attrs, slog.String("client_request_id", id))
			}
			log.LogAttrs(ctx, levelFor(status), "request", attrs...)
			return nil
		}
	}
}

func levelFor(status int) slog.Level {
	switch {
	case status == http.StatusTooManyRequests:
		// A client ignoring Retry-After would otherwise turn each refused
		// request into a log line: the flood the limiter stops would move
		// to the logs. The request metric still counts them by status.
		return slog.LevelDebug
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}

// recoverPanics turns a handler panic into a logged internal_error.
func recoverPanics(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("handler panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = problem(http.StatusInternalServerError, codeInternal, "internal error; see the API logs")
				}
			}()
			return next(c)
		}
	}
}
