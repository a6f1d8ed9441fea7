package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/events/intake"
)

// Seen remembers the intake commands applied and what was answered, so a
// duplicate (the same system, source and id) is answered again, not
// applied again (for 30 days: the intake bucket's TTL).
type Seen interface {
	// Claim marks key as being applied, atomically across API replicas.
	// When it is taken, prev is what was answered, or pending while
	// another replica still applies it.
	Claim(ctx context.Context, key string) (prev IntakeReply, pending, taken bool, err error)
	Put(ctx context.Context, key string, r IntakeReply) error
	// Release forgets key: the outcome was transient, and the sender's
	// retry must be applied.
	Release(ctx context.Context, key string) error
}

// transient outcomes are not remembered: the same command sent again
// later may succeed.
var transient = map[string]bool{CodeUnavailable: true, CodeEngineUnavailable: true, CodeConcurrent: true,
	CodeIllegalTransition: true, CodeQuotaWorkspaces: true, CodeQuotaRunning: true}

// IntakeReply answers an intake command.
type IntakeReply struct {
	Accepted    bool   `json:"accepted"`
	WorkspaceID string `json:"workspace_id,omitempty"`
	Version     uint64 `json:"version,omitempty"`
	Code        string `json:"code,omitempty"`
	Message     string `json:"message,omitempty"`
	// Duplicate: this command was applied before; the reply is the first one.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Intake codes beyond the parser's (intake.Code*) and the use cases'.
const (
	CodeUnknownSystem   = "unknown_system"
	CodeTypeNotAllowed  = "type_not_allowed"
	CodeOwnerNotAllowed = "owner_not_allowed"
	// CodeInProgress: the same command is being applied right now.
	CodeInProgress = "in_progress"
	// CodeNameOutsideNamespace: a system granted some owners chose a name
	// outside the owner's namespace.
	CodeNameOutsideNamespace = "name_outside_namespace"
)

// Intake applies one command from registered system (the subject it was
// published on says which: only that system may publish there). A refused
// command's reply has Accepted false and a stable code; the caller also
// dead-letters it. Intake never panics on its input.
func (s *Service) Intake(ctx context.Context, system string, header map[string][]string, body []byte) IntakeReply {
	reg, ok := s.proj.System(system)
	if !ok {
		return refused(CodeUnknownSystem, fmt.Sprintf("system %q is not registered (or was revoked)", system))
	}
	cmd, err := intake.Parse(header, body)
	if err != nil {
		var ie *intake.Error
		if errors.As(err, &ie) {
			return refused(ie.Code, ie.Message)
		}
		return refused(intake.CodeSchema, err.Error())
	}
	if !slices.Contains(reg.Types, cmd.Type) || cmd.Type == intake.TypeActivity {
		return refused(CodeTypeNotAllowed, fmt.Sprintf("system %s may send %v on this subject, not %s", system, workspaceTypes(reg.Types), cmd.Type))
	}
	if s.o.Seen == nil {
		return s.applyIntake(ctx, reg, cmd)
	}
	key := seenKey(system, cmd)
	prev, pending, taken, err := s.o.Seen.Claim(ctx, key)
	switch {
	case err != nil:
		return refused(CodeUnavailable, "cannot tell whether this command was applied before; send it again")
	case pending:
		return IntakeReply{Code: CodeInProgress, Message: "this command is being applied; send it again shortly for its answer", Duplicate: true}
	case taken:
		prev.Duplicate = true
		return prev
	}
	reply := s.applyIntake(ctx, reg, cmd)
	if transient[reply.Code] {
		if err := s.o.Seen.Release(ctx, key); err != nil {
			reply.Message += " (and it stays claimed for a minute: retry then)"
		}
		return reply // the sender retries, and it is applied then
	}
	if err := s.o.Seen.Put(ctx, key, reply); err != nil {
		reply.Message += " (not remembered: a duplicate may be applied again)"
	}
	return reply
}

func workspaceTypes(types []string) []string {
	return slices.DeleteFunc(slices.Clone(types), func(t string) bool { return t == intake.TypeActivity })
}

func refused(code, msg string) IntakeReply { return IntakeReply{Code: code, Message: msg} }

// seenKey names a command: a system's source and id, hashed (KV keys are
// restricted; sources are URIs).
func seenKey(system string, cmd intake.Command) string {
	sum := sha256.Sum256([]byte(system + "\x00" + cmd.Source + "\x00" + cmd.ID))
	return hex.EncodeToString(sum[:])
}

// intakeData is every command's data; the schema decided which fields may
// be there.
type intakeData struct {
	Workspace   string    `json:"workspace"`
	Name        string    `json:"name"`
	Owner       string    `json:"owner"`
	Description *string   `json:"description"`
	Image       *string   `json:"image"`
	Projects    *[]string `json:"projects"`
	Data        string    `json:"data"`
}

func (s *Service) applyIntake(ctx context.Context, reg events.SystemRegistered, cmd intake.Command) IntakeReply {
	var d intakeData
	if err := json.Unmarshal(cmd.Data, &d); err != nil {
		return refused(intake.CodeSchema, err.Error())
	}
	owner := d.Owner
	id := d.Workspace
	if cmd.Type != intake.TypeCreate {
		ws, ok := s.proj.Workspace(d.Workspace)
		if wsByName, byName := s.proj.WorkspaceByName(d.Workspace); !ok && byName {
			ws, ok = wsByName, true
		}
		if !ok || ws.Gone() {
			return refused(CodeNotFound, fmt.Sprintf("no workspace %q", d.Workspace))
		}
		owner, id = ws.Owner, ws.ID
	}
	anyone := slices.Contains(reg.Owners, "*")
	if !anyone && !slices.Contains(reg.Owners, owner) {
		return refused(CodeOwnerNotAllowed, fmt.Sprintf("system %s may not act for %q", reg.Name, owner))
	}
	// A system granted some owners names their workspaces in their
	// namespaces, as they would: it must not take another user's name.
	if cmd.Type == intake.TypeCreate && !anyone && !inNamespace(owner, d.Name) {
		home := HomeName(owner)
		return refused(CodeNameOutsideNamespace, fmt.Sprintf("%s's workspaces are named %q or %q followed by anything", owner, home, home+"--"))
	}
	// The system acts with an admin's reach within the owners it was
	// granted (checked above): it chooses names, images and projects.
	c := Caller{Subject: "system:" + reg.Name, Admin: true, System: reg.Name, CorrelationID: cmd.ID,
		CausationID: "intake:" + reg.Name + ":" + cmd.Source + "#" + cmd.ID}
	ws, err := s.runIntake(ctx, c, cmd.Type, id, d)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return refused(e.Code, e.Message)
		}
		return refused(CodeUnavailable, err.Error())
	}
	return IntakeReply{Accepted: true, WorkspaceID: ws.ID, Version: ws.Version}
}

func (s *Service) runIntake(ctx context.Context, c Caller, typ, id string, d intakeData) (events.Workspace, error) {
	switch typ {
	case intake.TypeCreate:
		in := CreateInput{Name: d.Name, Owner: d.Owner}
		if d.Description != nil {
			in.Description = *d.Description
		}
		if d.Image != nil {
			in.Image = *d.Image
		}
		if d.Projects != nil {
			in.Projects = *d.Projects
		}
		return s.Create(ctx, c, in)
	case intake.TypeStart:
		return s.Start(ctx, c, id)
	case intake.TypeStop:
		return s.Stop(ctx, c, id)
	case intake.TypeDelete:
		mode := DeleteMode(d.Data)
		if mode == "" {
			mode = DeleteKeep
		}
		return s.Delete(ctx, c, id, mode)
	}
	return s.Update(ctx, c, id, UpdateInput{Description: d.Description, Image: d.Image, Projects: d.Projects})
}
