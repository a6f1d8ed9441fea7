// Package app is router-sync's use case: keep Traefik's routes equal to the
// log. The Syncer folds the log into a projection, renders the routable
// workspaces and writes them after every change, retrying a failed write.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/telemetry"
	"github.com/berthdev/berth/services/router-sync/internal/render"
)

// Follower replays the log into apply, oldest first, then keeps applying
// new events until ctx ends; caughtUp closes once the replay is done.
// apply's context carries the event's trace context (eventlog.Log).
type Follower interface {
	FollowTraced(ctx context.Context, log *slog.Logger, apply func(context.Context, events.Envelope)) (caughtUp <-chan struct{}, err error)
}

// Projection is the fold the routes are rendered from (events.Projection).
type Projection interface {
	Apply(e events.Envelope) (bool, error)
	Workspace(id string) (events.Workspace, bool)
	Workspaces(keep func(events.Workspace) bool) []events.Workspace
}

// RouteWriter replaces the routes file if content changed, and reports
// whether it wrote (configdir.Writer).
type RouteWriter interface {
	Write(content []byte) (bool, error)
}

// DefaultRetryDelay is the wait after a failed write when RetryDelay is 0.
const DefaultRetryDelay = time.Second

// Syncer keeps one routes file equal to the log.
type Syncer struct {
	Log        Follower
	Projection Projection
	Writer     RouteWriter
	Render     render.Options
	Logger     *slog.Logger
	// File names the routes file in log lines.
	File string
	// RetryDelay is how long after a failed write it is tried again, if no
	// change comes first (0: DefaultRetryDelay).
	RetryDelay time.Duration
	// After is the clock of the retry (nil: time.After); tests inject one.
	After func(time.Duration) <-chan time.Time

	// changed holds at most one pending "the projection moved" signal: a
	// burst of events is rendered once.
	changed chan struct{}
	// causes are the trace contexts of the events that changed the
	// projection since the last write: the write's span continues the
	// newest and links the others.
	mu     sync.Mutex
	causes []trace.SpanContext
	// launched are the workspaces recorded running since the last write,
	// with when their start was asked for: the write routes them.
	launched map[string]time.Time
	live     bool // the replay is over: running events are launches now
	// Meter records request -> routed latency (nil: nothing).
	Meter  metric.Meter
	routed metric.Float64Histogram
}

// maxCauses bounds the links of one write's span (a replay changes the
// projection once per workspace).
const maxCauses = 16

// Apply folds one event from the log and, if it changed the projection,
// asks for a write. It is the follower's callback and the one place an
// event reaches the Syncer: what the write should know of the event that
// caused it (its trace context) starts here.
func (s *Syncer) Apply(ctx context.Context, e events.Envelope) {
	ok, err := s.Projection.Apply(e)
	if err != nil && s.Logger != nil {
		// The fold refused it (a name that is not a DNS label, an illegal
		// transition): it routes nothing, and an operator should see why.
		s.Logger.Warn("event refused by the fold; it changes no route", "workspace", e.Subject, "type", e.Type, "seq", e.Sequence, "err", err)
	}
	if ok {
		s.noteLaunch(e)
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			s.mu.Lock()
			s.causes = append(s.causes, sc)
			if len(s.causes) > maxCauses {
				s.causes = s.causes[len(s.causes)-maxCauses:]
			}
			s.mu.Unlock()
		}
		s.signal()
	}
}

// noteLaunch remembers a workspace that just turned running, to measure
// its launch once its route is written.
func (s *Syncer) noteLaunch(e events.Envelope) {
	if e.Type != events.TypeRunning {
		return
	}
	ws, ok := s.Projection.Workspace(e.Subject)
	if !ok || ws.Cause == nil || ws.Cause.Type != events.TypeStartRequested || ws.Cause.Time.IsZero() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		return // replaying history: those launches were measured when they happened
	}
	if s.launched == nil {
		s.launched = map[string]time.Time{}
	}
	s.launched[e.Subject] = ws.Cause.Time
}

// measureLaunches records, after a successful write, how long each
// workspace took from its start request to its route.
func (s *Syncer) measureLaunches(ctx context.Context, now time.Time) {
	s.mu.Lock()
	launched := s.launched
	s.launched = nil
	s.mu.Unlock()
	if len(launched) == 0 {
		return
	}
	if s.routed == nil {
		s.routed = telemetry.LaunchHistogram(s.Meter)
	}
	for _, asked := range launched {
		s.routed.Record(ctx, now.Sub(asked).Seconds(), metric.WithAttributes(attribute.String("stage", "routed"), attribute.String("outcome", "running")))
	}
}

// traced starts the write's span: a child of the newest event that asked
// for it, linked to the others, so a launch's trace ends with its route.
func (s *Syncer) traced(ctx context.Context) (context.Context, trace.Span, []trace.SpanContext) {
	s.mu.Lock()
	causes := s.causes
	s.causes = nil
	s.mu.Unlock()
	var links []trace.Link
	if n := len(causes); n > 0 {
		ctx = trace.ContextWithRemoteSpanContext(ctx, causes[n-1])
		for _, c := range causes[:n-1] {
			links = append(links, trace.Link{SpanContext: c})
		}
	}
	ctx, span := otel.Tracer("github.com/berthdev/berth/services/router-sync").Start(ctx, "write routes", trace.WithLinks(links...))
	return ctx, span, causes
}

// keepCauses puts back the causes of a write that failed: the retry is
// still theirs.
func (s *Syncer) keepCauses(causes []trace.SpanContext) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.causes = append(causes, s.causes...)
	if len(s.causes) > maxCauses {
		s.causes = s.causes[len(s.causes)-maxCauses:]
	}
}

func (s *Syncer) signal() {
	select {
	case s.changed <- struct{}{}:
	default: // one is pending already
	}
}

// Sync renders the routable workspaces and writes them if they changed.
// ctx is the write's own context, where a span around the write belongs.
func (s *Syncer) Sync(ctx context.Context) (err error) {
	_, span, causes := s.traced(ctx)
	defer func() {
		if err != nil {
			s.keepCauses(causes)
			span.RecordError(err)
			span.SetStatus(codes.Error, "routes not written")
		}
		span.End()
	}()
	wss := s.Projection.Workspaces(render.Routable)
	content, err := render.Render(wss, s.Render)
	if err != nil {
		return fmt.Errorf("render routes: %w", err)
	}
	written, err := s.Writer.Write(content)
	if err != nil {
		return err
	}
	span.SetAttributes(attribute.Int("berth.routes.workspaces", len(wss)), attribute.Bool("berth.routes.written", written))
	s.measureLaunches(ctx, time.Now())
	if written {
		s.Logger.Info("routes written", "file", s.File, "workspaces", len(wss))
	}
	return nil
}

// Run follows the log, writes the routes once it is replayed, calls synced,
// then writes after every change until ctx ends. A failed first write is
// returned (the caller restarts); a later one is retried on the next change
// or after RetryDelay, whichever comes first.
func (s *Syncer) Run(ctx context.Context, synced func()) error {
	s.changed = make(chan struct{}, 1) // before Follow: Apply runs from then on
	caughtUp, err := s.Log.FollowTraced(ctx, s.Logger, s.Apply)
	if err != nil {
		return fmt.Errorf("follow the log: %w", err)
	}
	select {
	case <-caughtUp:
	case <-ctx.Done():
		return nil
	}
	s.mu.Lock()
	s.live = true // from here on, running events are launches to measure
	s.mu.Unlock()
	s.drain() // the first write covers every event replayed so far
	if err := s.Sync(ctx); err != nil {
		return fmt.Errorf("first write of the routes: %w", err)
	}
	synced()
	return s.loop(ctx)
}

func (s *Syncer) drain() {
	select {
	case <-s.changed:
	default:
	}
}

func (s *Syncer) loop(ctx context.Context) error {
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.changed:
		case <-retry:
		}
		retry = nil
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			delay := s.retryDelay()
			s.Logger.Error("writing routes failed; retrying on the next change or after a delay", "retry_in", delay, "err", err)
			retry = s.after(delay)
		}
	}
}

func (s *Syncer) retryDelay() time.Duration {
	if s.RetryDelay > 0 {
		return s.RetryDelay
	}
	return DefaultRetryDelay
}

func (s *Syncer) after(d time.Duration) <-chan time.Time {
	if s.After != nil {
		return s.After(d)
	}
	return time.After(d)
}
