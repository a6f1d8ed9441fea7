package app

import (
	"context"
	"errors"

	"github.com/berthdev/berth/pkg/events"
)

// ContainerLogs asks a provisioner for a workspace container's output.
type ContainerLogs interface {
	// Logs returns the provisioner's reply; ErrEngineUnavailable when no
	// provisioner answers.
	Logs(ctx context.Context, req events.LogsRequest) (events.LogsReply, error)
}

// Logs codes.
const (
	CodeNoLogs   = "no_logs"
	CodeLogsBusy = "logs_busy"
)

// Logs is a workspace container's output.
type Logs struct {
	Text      string
	Truncated bool
}

// Logs returns the last tail lines workspace id's container wrote. Only
// its owner and admins may read them (not auditors: a program's output can
// hold anything, secrets included).
func (s *Service) Logs(ctx context.Context, c Caller, id string, tail int, timestamps bool) (Logs, error) {
	if tail < 1 || tail > events.MaxLogTail {
		return Logs{}, invalid(FieldError{Field: "tail", Code: "out_of_range", Message: "tail must be 1 to 5000 lines"})
	}
	ws, err := s.Get(ctx, c, id)
	if err != nil {
		return Logs{}, err
	}
	if s.o.Logs == nil {
		return Logs{}, &Error{Kind: KindUnavailable, Code: CodeEngineUnavailable, Message: "no provisioner serves logs"}
	}
	reply, err := s.o.Logs.Logs(ctx, events.LogsRequest{WorkspaceID: ws.ID, Tail: tail, Timestamps: timestamps})
	switch {
	case errors.Is(err, ErrEngineUnavailable):
		return Logs{}, &Error{Kind: KindUnavailable, Code: CodeEngineUnavailable, Message: "no provisioner answered", Err: err}
	case err != nil:
		return Logs{}, unavailable(err)
	}
	switch reply.Code {
	case "":
		return Logs{Text: reply.Logs, Truncated: reply.Truncated}, nil
	case "no_container":
		return Logs{}, &Error{Kind: KindNotFound, Code: CodeNoLogs, Message: "the workspace has no container (never started, or removed), so it has no logs"}
	case "busy":
		return Logs{}, &Error{Kind: KindUnavailable, Code: CodeLogsBusy, Message: "the provisioner is reading other logs; try again"}
	}
	return Logs{}, &Error{Kind: KindUnavailable, Code: CodeEngineUnavailable, Message: reply.Message}
}
