package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/berthdev/berth/pkg/events"
)

// Quotas are the installation's default per-user limits (0: none).
type Quotas struct {
	Workspaces int // workspaces a user owns (deleted ones do not count)
	Running    int // of those, starting or running at once
}

// Limit is one limit and how much of it is used.
type Limit struct {
	Limit int `json:"limit"` // 0: no limit
	Used  int `json:"used"`
}

// Quota is a user's limits and use.
type Quota struct {
	Subject    string `json:"sub"`
	Workspaces Limit  `json:"workspaces"`
	Running    Limit  `json:"running"`
	// Override says an admin set limits for this user.
	Override bool `json:"override"`
}

// QuotaInput overrides a user's limits; nil goes back to the default.
type QuotaInput struct {
	Workspaces *int `json:"workspaces"`
	Running    *int `json:"running"`
}

// maxQuota bounds what an admin may set, so a typo cannot look unlimited
// while meaning something else.
const maxQuota = 10000

// Quota returns a user's limits and use (the user themself, or admins).
func (s *Service) Quota(c Caller, subject string) (Quota, error) {
	if !c.Admin && subject != c.Subject {
		return Quota{}, forbidden("only admins read other users' quotas")
	}
	return s.quota(subject), nil
}

func (s *Service) quota(subject string) Quota {
	q := Quota{Subject: subject, Workspaces: Limit{Limit: s.o.Quotas.Workspaces}, Running: Limit{Limit: s.o.Quotas.Running}}
	if o, ok, _ := s.proj.Quota(subject); ok {
		q.Override = true
		if o.Workspaces != nil {
			q.Workspaces.Limit = *o.Workspaces
		}
		if o.Running != nil {
			q.Running.Limit = *o.Running
		}
	}
	for _, ws := range s.proj.Workspaces(func(ws events.Workspace) bool { return ws.Owner == subject }) {
		if ws.Gone() {
			continue
		}
		q.Workspaces.Used++
		if active(ws.Status) {
			q.Running.Used++
		}
	}
	return q
}

// active statuses hold an engine's resources, or are about to.
func active(s events.Status) bool { return s == events.StatusStarting || s == events.StatusRunning }

// SetQuota overrides a user's limits (admins); both nil removes the
// override. The change is an event on the user settings subject.
func (s *Service) SetQuota(ctx context.Context, c Caller, subject string, in QuotaInput) (Quota, error) {
	if !c.Admin {
		return Quota{}, forbidden("only admins set quotas")
	}
	var fields []FieldError
	if subject == "" || len(subject) > 256 {
		fields = append(fields, FieldError{Field: "sub", Code: "invalid_subject", Message: "the subject must be 1-256 bytes"})
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"workspaces", in.Workspaces}, {"running", in.Running}} {
		if f.v != nil && (*f.v < 0 || *f.v > maxQuota) {
			fields = append(fields, FieldError{Field: f.name, Code: "out_of_range",
				Message: fmt.Sprintf("%s must be between 0 (no limit) and %d, or null for the default", f.name, maxQuota)})
		}
	}
	if len(fields) > 0 {
		return Quota{}, invalid(fields...)
	}
	p := &events.QuotaSet{Subject: subject, Workspaces: in.Workspaces, Running: in.Running}
	if err := s.appendUsers(ctx, p, c.meta(s.o.Source, "quota set by "+c.Subject)); err != nil {
		return Quota{}, err
	}
	return s.quota(subject), nil
}

// appendUsers appends one user-settings event after the settings the
// projection holds, catching up and trying again when another writer was
// first.
func (s *Service) appendUsers(ctx context.Context, p events.Payload, m events.Meta) error {
	for range maxAttempts {
		_, _, version := s.proj.Quota("")
		e, err := events.New(events.UsersSubject, p, m, s.o.Now())
		if err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
		seq, err := s.log.Append(actx, e, version)
		cancel()
		if errors.Is(err, ErrConflict) {
			if err := s.catchUp(ctx, events.UsersSubject); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return unavailable(err)
		}
		e.Sequence = seq
		_, _ = s.proj.Apply(e)
		return nil
	}
	return &Error{Kind: KindConflict, Code: CodeConcurrent, Message: "user settings are changing too fast; retry"}
}

// checkWorkspaceQuota refuses a new workspace over the owner's limit.
// Admins act for the installation and are not limited.
func (s *Service) checkWorkspaceQuota(c Caller, owner string) error {
	if c.Admin {
		return nil
	}
	q := s.quota(owner)
	if q.Workspaces.Limit > 0 && q.Workspaces.Used >= q.Workspaces.Limit {
		return &Error{Kind: KindConflict, Code: CodeQuotaWorkspaces, Message: fmt.Sprintf(
			"you have %d workspaces and may have %d; delete one first, or ask an admin for more", q.Workspaces.Used, q.Workspaces.Limit)}
	}
	return nil
}

// checkRunningQuota refuses a start that would put the owner over the
// running limit.
func (s *Service) checkRunningQuota(c Caller, ws events.Workspace) error {
	if c.Admin || active(ws.Status) {
		return nil
	}
	q := s.quota(ws.Owner)
	if q.Running.Limit > 0 && q.Running.Used >= q.Running.Limit {
		return &Error{Kind: KindConflict, Code: CodeQuotaRunning, Message: fmt.Sprintf(
			"you have %d workspaces running and may run %d at once; stop one first, or ask an admin for more", q.Running.Used, q.Running.Limit)}
	}
	return nil
}

// HomeName is a user's own workspace name, the default of "Launch
// workspace". A subject that is already a DNS label is used as it is;
// any other gets a hash of itself appended, so two subjects (alice@x.com
// and alice.x.com) never share one. It never contains "--".
func HomeName(subject string) string {
	label := LabelFor(subject)
	if label == subject && validateName(label) == nil {
		return label
	}
	sum := sha256.Sum256([]byte(subject))
	label = strings.TrimRight(label[:min(len(label), 63-7)], "-")
	return label + "-" + hex.EncodeToString(sum[:3])
}

// inNamespace reports whether a user may give a workspace this name: their
// home name, or the home name, "--" and anything. Nobody else can take a
// user's home name, so a user's "Launch workspace" is never blocked.
func inNamespace(subject, name string) bool {
	home := HomeName(subject)
	return name == home || strings.HasPrefix(name, home+"--")
}

// defaultName is the name Launch uses without one: the caller's home name;
// the pre-namespace label if the caller already owns a workspace by it; or
// home--home if someone else holds the home name (named before names were
// namespaced, or by an admin).
func (s *Service) defaultName(subject string) string {
	if old, ok := s.proj.WorkspaceByName(LabelFor(subject)); ok && old.Owner == subject {
		return old.Name
	}
	home := HomeName(subject)
	if ws, ok := s.proj.WorkspaceByName(home); ok && ws.Owner != subject {
		return home + "--home"
	}
	return home
}
