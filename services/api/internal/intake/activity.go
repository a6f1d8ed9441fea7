// Package intake takes messages other systems publish on the bus. Today:
// activity reports, so systems that see a user working (a terminal broker,
// a notebook kernel monitor) keep the workspace from being stopped as idle.
package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthdev/berth/pkg/events"
	cloudevents "github.com/berthdev/berth/pkg/events/intake"
)

// Workspaces answers whether a workspace exists and runs.
type Workspaces interface {
	Workspace(id string) (events.Workspace, bool)
}

// Tracker records activity.
type Tracker interface {
	Touch(id string, now time.Time)
}

// DeadLetters keeps messages that can never be applied.
type DeadLetters interface {
	DeadLetter(ctx context.Context, consumer, subject string, data []byte, reason string) error
}

// ActivityReport is the body of a message on events.IntakeActivitySubject.
type ActivityReport struct {
	WorkspaceID string `json:"workspace_id"`
}

// Activity subscribes to activity reports. Every API replica is in one
// queue group, so each report is handled once. Reports that cannot apply
// are dead-lettered on berth.deadletter.intake with the reason; a report
// for a workspace that is not running is ignored (not an error: it may
// have just stopped).
func Activity(nc *nats.Conn, ws Workspaces, t Tracker, dl DeadLetters, now func() time.Time, log *slog.Logger) (*nats.Subscription, error) {
	sub, err := nc.QueueSubscribe(events.IntakeActivitySubject, "berth-api", func(m *nats.Msg) {
		data, reason := activityData(m)
		if reason == "" {
			reason = check(data, ws, t, now)
		}
		if reason == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := dl.DeadLetter(ctx, "intake", m.Subject, m.Data, reason); err != nil {
			log.Error("activity report rejected and not dead-lettered", "reason", reason, "err", err)
			return
		}
		log.Warn("activity report dead-lettered", "reason", reason)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", events.IntakeActivitySubject, err)
	}
	return sub, nil
}

// activityData is a report's body: a CloudEvent's data (either mode of the
// NATS binding, type berth.intake.activity), or the plain JSON body older
// reporters send.
func activityData(m *nats.Msg) ([]byte, string) {
	if m.Header.Get("ce-specversion") == "" && !strings.HasPrefix(strings.ToLower(m.Header.Get("Content-Type")), "application/cloudevents+json") {
		return m.Data, ""
	}
	cmd, err := cloudevents.Parse(m.Header, m.Data)
	if err != nil {
		return nil, "activity report: " + err.Error()
	}
	if cmd.Type != cloudevents.TypeActivity {
		return nil, fmt.Sprintf("activity report of type %q; want %s", cmd.Type, cloudevents.TypeActivity)
	}
	return cmd.Data, ""
}

// check applies one report and returns why it was rejected ("" = taken).
func check(data []byte, ws Workspaces, t Tracker, now func() time.Time) string {
	var r ActivityReport
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return "malformed activity report: " + err.Error() + `; want {"workspace_id": "<id>"}`
	}
	if r.WorkspaceID == "" {
		return "activity report without workspace_id"
	}
	w, ok := ws.Workspace(r.WorkspaceID)
	if !ok {
		return "no such workspace: " + r.WorkspaceID
	}
	if w.Status == events.StatusRunning {
		t.Touch(w.ID, now())
	}
	return ""
}
