package app

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/telemetry"
)

// instruments are what the provisioner reports to operators.
type instruments struct {
	launch       metric.Float64Histogram // request -> running recorded
	archiveTime  metric.Float64Histogram
	archiveBytes metric.Int64Histogram
	drift        metric.Int64Counter // reconciler repairs by kind
}

func newInstruments(m metric.Meter) instruments {
	if m == nil {
		m = noop.NewMeterProvider().Meter("")
	}
	var in instruments
	// Errors only come from bad names or units: fixed here.
	in.launch = telemetry.LaunchHistogram(m)
	in.archiveTime, _ = m.Float64Histogram("berth.archive.duration", metric.WithUnit("s"),
		metric.WithDescription("Archiving a home volume, written and verified"))
	in.archiveBytes, _ = m.Int64Histogram("berth.archive.size", metric.WithUnit("By"),
		metric.WithDescription("Size of verified archives"),
		metric.WithExplicitBucketBoundaries(1<<10, 1<<20, 10<<20, 100<<20, 1<<30, 10<<30))
	in.drift, _ = m.Int64Counter("berth.reconcile.repairs",
		metric.WithDescription("Drift between the log and the engine found by the reconciler, by kind (record_gone, stop_stray, remove_orphan) and outcome"))
	return in
}

// recorded notes an observation the provisioner appended: a start's
// outcome measures the launch from its request.
func (in instruments) recorded(ctx context.Context, ws events.Workspace, payload events.Payload, now time.Time) {
	if ws.Cause == nil || ws.Cause.Type != events.TypeStartRequested || ws.Cause.Time.IsZero() {
		return
	}
	var outcome string
	switch payload.(type) {
	case *events.Running:
		outcome = "running"
	case *events.Failed:
		outcome = "failed"
	default:
		return
	}
	in.launch.Record(ctx, now.Sub(ws.Cause.Time).Seconds(), metric.WithAttributes(
		attribute.String("stage", "running"), attribute.String("outcome", outcome)))
}
