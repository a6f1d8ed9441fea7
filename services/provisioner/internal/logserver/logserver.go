// Package logserver answers the API's requests for a workspace
// container's output (events.LogsSubject): the API holds no engine access,
// the provisioner does.
package logserver

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
)

// Source reads a workspace's logs from the engine.
type Source interface {
	Logs(ctx context.Context, id string, tail int, timestamps bool) ([]byte, bool, error)
}

// Server serves events.LogsSubject in queue group "provisioner" (one
// provisioner answers each request).
type Server struct {
	NC     *nats.Conn
	Source Source
	// Code names an engine error for the reply ("no_container",
	// "engine_unavailable", ...).
	Code   func(error) string
	Logger *slog.Logger
	// At most Concurrency reads at once, each at most Timeout; requests
	// beyond are answered "busy" at once rather than queued.
	Concurrency int
	Timeout     time.Duration
}

// Run serves until ctx ends, then drains.
func (s *Server) Run(ctx context.Context) error {
	slots := make(chan struct{}, max(s.Concurrency, 1))
	sub, err := s.NC.QueueSubscribe(events.LogsSubject, "provisioner", func(m *nats.Msg) {
		if m.Reply == "" {
			return // nobody to answer
		}
		select {
		case slots <- struct{}{}:
		default:
			s.reply(m, events.LogsReply{Code: "busy", Message: "too many log reads at once; try again"})
			return
		}
		go func() {
			defer func() { <-slots }()
			s.reply(m, s.answer(ctx, m.Data))
		}()
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", events.LogsSubject, err)
	}
	<-ctx.Done()
	return sub.Drain()
}

func (s *Server) answer(ctx context.Context, data []byte) events.LogsReply {
	var req events.LogsRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return events.LogsReply{Code: "bad_request", Message: "not a logs request: " + err.Error()}
	}
	if err := req.Check(); err != nil {
		return events.LogsReply{Code: "bad_request", Message: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	logs, truncated, err := s.Source.Logs(ctx, req.WorkspaceID, req.Tail, req.Timestamps)
	if err != nil {
		code := s.Code(err)
		s.Logger.Warn("logs not read", "workspace", req.WorkspaceID, "code", code, "err", err)
		return events.LogsReply{Code: code, Message: err.Error()}
	}
	return events.LogsReply{Logs: string(logs), Truncated: truncated}
}

func (s *Server) reply(m *nats.Msg, r events.LogsReply) {
	b, err := fit(r, int(s.NC.MaxPayload())-1024) // room for headers
	if err == nil {
		err = m.Respond(b)
	}
	if err != nil {
		s.Logger.Warn("logs reply not sent", "err", err)
	}
}

// fit encodes r in at most limit bytes: JSON can make output several
// times longer (control bytes become \u001b, invalid UTF-8 \ufffd), so
// older halves of the logs are dropped, at line starts, until it fits.
func fit(r events.LogsReply, limit int) ([]byte, error) {
	for {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // <, > and & stay one byte
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
		if buf.Len() <= limit || r.Logs == "" {
			return buf.Bytes(), nil
		}
		cut := len(r.Logs) / 2
		if i := strings.IndexByte(r.Logs[cut:], '\n'); i >= 0 && i < len(r.Logs)/4 {
			cut += i + 1
		}
		r.Logs, r.Truncated = r.Logs[cut:], true
	}
}
