package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/berthdev/berth/pkg/events"
)

// LifecycleInput changes how the reaper treats a workspace; nil fields
// stay. Hold and its reason are for admins; owners may set their idle
// timeout within the admin bounds (0 = the default).
type LifecycleInput struct {
	Hold               *bool   `json:"hold"`
	HoldReason         *string `json:"hold_reason"`
	IdleTimeoutSeconds *int64  `json:"idle_timeout_seconds"`
}

// Lifecycle records a lifecycle change; an unchanged value records nothing.
func (s *Service) Lifecycle(ctx context.Context, c Caller, id string, in LifecycleInput) (events.Workspace, error) {
	if !c.Admin && (in.Hold != nil || in.HoldReason != nil) {
		return events.Workspace{}, forbidden("only admins put a workspace on hold")
	}
	if fields := s.checkLifecycle(&in); len(fields) > 0 {
		return events.Workspace{}, invalid(fields...)
	}
	return s.command(ctx, c, id, func(ws events.Workspace) (events.Payload, string, error) {
		p, what := lifecycleChange(ws, in)
		if len(what) == 0 {
			return nil, "", nil
		}
		return p, strings.Join(what, ", ") + " by " + c.Subject, nil
	})
}

// checkLifecycle validates in (trimming the hold reason).
func (s *Service) checkLifecycle(in *LifecycleInput) []FieldError {
	var fields []FieldError
	if in.HoldReason != nil {
		r := strings.TrimSpace(*in.HoldReason)
		in.HoldReason = &r
		if len(r) > 200 {
			fields = append(fields, FieldError{Field: "hold_reason", Code: "too_long", Message: "hold_reason must be at most 200 characters"})
		}
	}
	if in.IdleTimeoutSeconds != nil && !s.idleTimeoutAllowed(*in.IdleTimeoutSeconds) {
		fields = append(fields, FieldError{Field: "idle_timeout_seconds", Code: "out_of_range",
			Message: fmt.Sprintf("idle_timeout_seconds must be 0 (the default) or between %d and %d", int64(s.o.IdleTimeoutMin.Seconds()), int64(s.o.IdleTimeoutMax.Seconds()))})
	}
	if in.Hold == nil && in.HoldReason == nil && in.IdleTimeoutSeconds == nil {
		fields = append(fields, FieldError{Field: "", Code: "empty", Message: "send at least one of hold, hold_reason, idle_timeout_seconds"})
	}
	return fields
}

// idleTimeoutAllowed: 0 (the default) or within the configured bounds.
func (s *Service) idleTimeoutAllowed(secs int64) bool {
	if secs == 0 {
		return true
	}
	// Checked before converting: seconds beyond what a Duration holds
	// would wrap around to something small and pass the bounds.
	if secs < 0 || secs > int64(math.MaxInt64/time.Second) {
		return false
	}
	d := time.Duration(secs) * time.Second
	return d >= s.o.IdleTimeoutMin && (s.o.IdleTimeoutMax <= 0 || d <= s.o.IdleTimeoutMax)
}

// lifecycleChange is what in changes on ws, and its description.
func lifecycleChange(ws events.Workspace, in LifecycleInput) (*events.LifecycleChanged, []string) {
	var p events.LifecycleChanged
	var what []string
	if in.Hold != nil && *in.Hold != ws.Hold {
		p.Hold = in.Hold
		what = append(what, map[bool]string{true: "hold set", false: "hold released"}[*in.Hold])
	}
	if in.HoldReason != nil && *in.HoldReason != ws.HoldReason {
		p.HoldReason = in.HoldReason
		what = append(what, "hold reason changed")
	}
	if in.IdleTimeoutSeconds != nil && *in.IdleTimeoutSeconds != ws.IdleTimeoutSeconds {
		p.IdleTimeoutSeconds = in.IdleTimeoutSeconds
		what = append(what, fmt.Sprintf("idle timeout %ds", *in.IdleTimeoutSeconds))
	}
	return &p, what
}

// Restore asks for a deleted workspace to get its home volume back from its
// verified archive (admins only). Its name must still be free.
func (s *Service) Restore(ctx context.Context, c Caller, id string) (events.Workspace, error) {
	if !c.Admin {
		return events.Workspace{}, forbidden("only admins restore a workspace")
	}
	ws, ok := s.proj.Workspace(id)
	if !ok {
		return events.Workspace{}, errNotFound
	}
	if ws.Status == events.StatusDeleted {
		if ws.Archive == nil || ws.Archive.SHA256 == "" {
			return ws, &Error{Kind: KindConflict, Code: CodeNoArchive, Message: fmt.Sprintf("workspace %s was deleted without an archive; there is nothing to restore", ws.Name)}
		}
		cctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
		defer cancel()
		err := s.names.Claim(cctx, ws.Name, ws.ID, s.staleClaim(cctx))
		if errors.Is(err, ErrNameTaken) {
			return ws, &Error{Kind: KindConflict, Code: CodeNameTaken, Message: fmt.Sprintf("another workspace is now named %q; delete or rename it first", ws.Name)}
		}
		if err != nil {
			return ws, unavailable(err)
		}
	}
	return s.command(ctx, c, id, func(ws events.Workspace) (events.Payload, string, error) {
		if ws.Status == events.StatusRestoring {
			return nil, "", nil
		}
		return &events.RestoreRequested{}, "restore requested by " + c.Subject, nil
	})
}
