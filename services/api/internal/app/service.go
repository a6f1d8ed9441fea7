// Package app holds the API's use cases: it validates commands against the
// projection, decides which event they produce, and appends it to the log
// with optimistic concurrency. It knows nothing of HTTP.
package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/keyed"
)

// Log is the audit log as the use cases need it. The adapter behind it
// (internal/adapters) translates its errors into this package's.
type Log interface {
	// Append writes e if the subject is still at expected; otherwise it
	// returns ErrConflict. Any other error means the log is unreachable.
	Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error)
	Read(ctx context.Context, subject string) ([]events.Envelope, error)
	// ReadAll is Read plus the sequence of the subject's last message,
	// including ones the fold rejects: the version to append after.
	ReadAll(ctx context.Context, subject string) ([]events.Envelope, uint64, error)
	// ReadPage returns up to limit events of subject from sequence from
	// (inclusive) on, and where to continue (0: nothing more). It must not
	// create server-side state: the API calls it for every history request.
	ReadPage(ctx context.Context, subject string, from uint64, limit int) ([]events.Envelope, uint64, error)
	DeadLetters
	AuditLog
}

// ErrConflict is returned by Log.Append when the subject moved past the
// expected sequence: someone else wrote first. Re-read and retry.
var ErrConflict = errors.New("conflict: the subject changed since it was read")

// Names makes workspace names unique across concurrent writers. stale
// tells Claim whether the current holder of a name may be displaced.
type Names interface {
	Claim(ctx context.Context, name, id string, stale func(holder string, claimedAt time.Time) bool) error
}

// Engine tells whether workspaces can be started now (some provisioner
// reaches its container engine).
type Engine interface {
	// Check returns ErrEngineUnavailable when provisioners report that no
	// engine is reachable; any other error means the reports are unreadable.
	Check(ctx context.Context) error
}

// ErrEngineUnavailable is returned by Engine.Check when no provisioner
// reaches its container engine.
var ErrEngineUnavailable = errors.New("no provisioner reaches the container engine")

// ErrNameTaken is returned by Names.Claim when another workspace holds the
// name.
var ErrNameTaken = errors.New("name taken")

// Caller is who issues a command, from a verified token.
type Caller struct {
	Subject string
	Admin   bool
	// Auditor reads the whole audit log (and may change nothing it could
	// not change without the role).
	Auditor bool
	// System, when set, is the registered system acting (through the
	// intake): the events' actor is system:<name>, and CausationID names
	// the intake command they answer.
	System      string
	CausationID string
	// CorrelationID and trace context are copied into the events.
	CorrelationID string
	TraceParent   string
	TraceState    string
	// anyName lifts the name namespace and anyImage the launchable rule
	// (an admin's launch, which defines the workspace as its user would).
	anyName, anyImage bool
}

func (c Caller) meta(source, reason string) events.Meta {
	actor := "user:" + c.Subject
	if c.System != "" {
		actor = "system:" + c.System
	}
	return events.Meta{Source: source, Actor: actor, Reason: reason, CorrelationID: c.CorrelationID, CausationID: c.CausationID,
		TraceParent: c.TraceParent, TraceState: c.TraceState}
}

// Options configure the use cases.
type Options struct {
	// Source is the CloudEvents source of events this API writes.
	Source       string
	ProjectsRoot string
	DefaultImage string
	Bounds       Bounds
	// ClaimGrace is how long a name claim whose workspace never reached the
	// log is honoured (covers a writer that crashed between the two steps).
	ClaimGrace time.Duration
	// AppendTimeout bounds one append, so a request fails with "unavailable"
	// instead of hanging while the bus is down.
	AppendTimeout time.Duration
	// Engine, when set, is asked before a start is accepted.
	Engine Engine
	// Credentials keeps registered systems' bus passwords (hashes); Seen
	// the intake commands already applied.
	Credentials Credentials
	Seen        Seen
	// IdleTimeoutMin and IdleTimeoutMax bound per-workspace idle timeouts
	// (the reaper clamps to the same bounds).
	IdleTimeoutMin time.Duration
	IdleTimeoutMax time.Duration
	// Quotas are the default per-user limits (admins override them).
	Quotas Quotas
	// Logs, when set, reads containers' output from a provisioner.
	Logs ContainerLogs
	Now  func() time.Time
}

// Service runs the workspace and catalog commands.
type Service struct {
	log   Log
	proj  *events.Projection
	names Names
	o     Options
	// owners serialises one user's quota check and the append it allows,
	// so parallel requests cannot both take the last slot (within one
	// API replica; docs/security.md).
	owners keyed.Mutex
}

// New returns a Service; zero options get working defaults.
func New(log Log, proj *events.Projection, names Names, o Options) *Service {
	if o.Source == "" {
		o.Source = "berth/api"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ClaimGrace == 0 {
		o.ClaimGrace = 30 * time.Second
	}
	if o.AppendTimeout == 0 {
		o.AppendTimeout = 5 * time.Second
	}
	return &Service{log: log, proj: proj, names: names, o: o}
}

// maxAttempts bounds the re-read-and-retry loop on append conflicts.
const maxAttempts = 5

// decision is what a command decided for the workspace's current state: an
// event to append, or nil when the workspace already is as asked.
type decision func(ws events.Workspace) (events.Payload, string, error)

// command applies decide to the workspace with optimistic concurrency: on a
// conflict it re-reads the workspace from the log and decides again.
func (s *Service) command(ctx context.Context, c Caller, id string, decide decision) (events.Workspace, error) {
	ws, ok := s.proj.Workspace(id)
	if !ok || !visible(c, ws) {
		return events.Workspace{}, errNotFound
	}
	reloaded := false
	for range maxAttempts {
		p, reason, err := decide(ws)
		if err != nil {
			return ws, err
		}
		if settled, verdict := settledBy(ws, p); settled {
			// "Nothing to do" and "not possible" are judged on the log
			// itself: the projection may lag a write by another service.
			if reloaded {
				return ws, verdict
			}
		} else {
			next, err := s.append(ctx, ws, p, c.meta(s.o.Source, reason))
			if !errors.Is(err, ErrConflict) {
				return next, err
			}
		}
		if ws, err = s.reload(ctx, id); err != nil {
			return events.Workspace{}, err
		}
		reloaded = true
	}
	return ws, &Error{Kind: KindConflict, Code: CodeConcurrent, Message: "the workspace is changing too fast; retry"}
}

// settledBy reports whether p leaves ws as it is: nil (nothing to do, no
// error) or not possible from ws's status (an illegal_transition error).
func settledBy(ws events.Workspace, p events.Payload) (bool, error) {
	if p == nil {
		return true, nil
	}
	if _, ok := events.Next(ws.Status, p.EventType()); !ok {
		return true, &Error{Kind: KindConflict, Code: CodeIllegalTransition,
			Message: fmt.Sprintf("workspace %s is %s; %s is not possible now", ws.Name, ws.Status, verb(p.EventType()))}
	}
	return false, nil
}

// append writes one event after ws and folds it into the projection so the
// caller reads its own write.
func (s *Service) append(ctx context.Context, ws events.Workspace, p events.Payload, m events.Meta) (events.Workspace, error) {
	e, err := events.New(ws.ID, p, m, s.o.Now())
	if err != nil {
		return ws, err
	}
	actx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	seq, err := s.log.Append(actx, e, ws.Version)
	if errors.Is(err, ErrConflict) {
		return ws, err
	}
	if err != nil {
		return ws, unavailable(err)
	}
	e.Sequence = seq
	_, _ = s.proj.Apply(e)
	return events.Apply(ws, e)
}

func (s *Service) reload(ctx context.Context, id string) (events.Workspace, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	evs, last, err := s.log.ReadAll(ctx, id)
	if err != nil {
		return events.Workspace{}, unavailable(err)
	}
	// Events the fold rejects (a foreign writer) are passed over, as the
	// projection does; the next append must still come after them.
	var ws events.Workspace
	for _, e := range evs {
		if next, err := events.Apply(ws, e); err == nil {
			ws = next
		}
	}
	ws.Version = max(ws.Version, last)
	return ws, nil
}

func visible(c Caller, ws events.Workspace) bool {
	return c.Admin || ws.Owner == c.Subject
}

func verb(t events.Type) string {
	switch t {
	case events.TypeStartRequested:
		return "start"
	case events.TypeStopRequested:
		return "stop"
	case events.TypeDeleteRequested:
		return "delete"
	case events.TypeUpdated:
		return "update (stop it first)"
	case events.TypeRestoreRequested:
		return "restore (only deleted workspaces are restored)"
	case events.TypeLifecycleChanged:
		return "a lifecycle change"
	}
	return string(t)
}

// CreateInput is a new workspace's definition. Users may set only name and
// description: the rest comes from the default template.
type CreateInput struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Image       string            `json:"image"`
	Projects    []string          `json:"projects"`
	Owner       string            `json:"owner"`
	Resources   *events.Resources `json:"resources"`
}

// Create defines a workspace (status created; not started).
func (s *Service) Create(ctx context.Context, c Caller, in CreateInput) (events.Workspace, error) {
	created, err := s.define(c, in)
	if err != nil {
		return events.Workspace{}, err
	}
	return s.createDefined(ctx, c, created)
}

func (s *Service) define(c Caller, in CreateInput) (events.Created, error) {
	if !c.Admin {
		if in.Owner != "" && in.Owner != c.Subject {
			return events.Created{}, forbidden("only admins create workspaces for other users")
		}
		if len(in.Projects) > 0 || in.Resources != nil {
			return events.Created{}, forbidden("only admins choose projects or resources; users get the default template")
		}
		// (An image not in the catalog is a field error below.)
		if img := trimmed(in.Image); img != "" && !c.anyImage && !s.mayUse(c, img) {
			if _, ok := s.proj.Image(img); ok {
				return events.Created{}, imageNotLaunchable(img)
			}
		}
	}
	in.Name, in.Owner, in.Image = trimmed(in.Name), trimmed(in.Owner), trimmed(in.Image)
	if in.Owner == "" {
		in.Owner = c.Subject
	}
	if in.Image == "" {
		in.Image = s.DefaultImage()
	}
	fields := nonNil(validateName(in.Name), validateDescription(in.Description))
	if !c.Admin && !c.anyName && validateName(in.Name) == nil && !inNamespace(c.Subject, in.Name) {
		home := HomeName(c.Subject)
		fields = append(fields, FieldError{Field: "name", Code: "name_outside_namespace",
			Message: fmt.Sprintf("your workspaces are named %q or %q followed by anything, so nobody can take another user's name", home, home+"--")})
	}
	bounds := s.o.Bounds
	if img, ok := s.proj.Image(in.Image); !ok {
		fields = append(fields, FieldError{Field: "image", Code: "image_not_in_catalog",
			Message: fmt.Sprintf("image %q is not in the catalog; an admin must add it first", in.Image)})
	} else if img.Profile.Resources != nil {
		bounds.Default = overlay(bounds.Default, *img.Profile.Resources) // the image's own defaults
	}
	fields = append(fields, validateProjects(s.o.ProjectsRoot, in.Projects)...)
	res, resFields := bounds.resolveResources(in.Resources)
	fields = append(fields, resFields...)
	if len(fields) > 0 {
		return events.Created{}, invalid(fields...)
	}
	projects := slices.Clone(in.Projects)
	if projects == nil {
		projects = []string{}
	}
	return events.Created{Name: in.Name, Description: in.Description, Image: in.Image, Projects: projects, Owner: in.Owner, Resources: res}, nil
}

func (s *Service) createDefined(ctx context.Context, c Caller, created events.Created) (events.Workspace, error) {
	if !c.Admin {
		defer s.owners.Lock(created.Owner)()
	}
	if err := s.checkWorkspaceQuota(c, created.Owner); err != nil {
		return events.Workspace{}, err
	}
	if _, taken := s.proj.WorkspaceByName(created.Name); taken {
		return events.Workspace{}, nameTaken(created.Name)
	}
	id := uuid.NewString()
	cctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	err := s.names.Claim(cctx, created.Name, id, s.staleClaim(cctx))
	if errors.Is(err, ErrNameTaken) {
		return events.Workspace{}, nameTaken(created.Name)
	}
	if err != nil {
		return events.Workspace{}, unavailable(err)
	}
	ws, err := s.append(ctx, events.Workspace{ID: id}, &created, c.meta(s.o.Source, "created by "+c.Subject))
	if errors.Is(err, ErrConflict) {
		// A fresh UUID cannot have history; treat as a transient log fault.
		return events.Workspace{}, unavailable(err)
	}
	return ws, err
}

func imageNotLaunchable(image string) error {
	return &Error{Kind: KindForbidden, Code: CodeImageNotLaunchable,
		Message: fmt.Sprintf("image %q is not one users may launch themselves; an admin can allow it (PATCH /api/v1/images/{ref} with launchable) or create the workspace for you", image)}
}

func nameTaken(name string) error {
	return &Error{Kind: KindConflict, Code: CodeNameTaken, Message: fmt.Sprintf("a workspace named %q already exists", name)}
}

// staleClaim decides whether a name claim may be taken over: its workspace
// was deleted, or it never reached the log within the grace period, or the
// holder is no workspace id at all (the API writes only ids; anything else
// was written past it, and would block the name for good).
func (s *Service) staleClaim(ctx context.Context) func(holder string, claimedAt time.Time) bool {
	return func(holder string, claimedAt time.Time) bool {
		if u, err := uuid.Parse(holder); err != nil || u.String() != holder {
			return true
		}
		if ws, ok := s.proj.Workspace(holder); ok {
			return ws.Status == events.StatusDeleted
		}
		evs, err := s.log.Read(ctx, holder)
		if err != nil || len(evs) > 0 {
			ws, ferr := events.Fold(evs)
			return err == nil && ferr == nil && ws.Status == events.StatusDeleted
		}
		return s.o.Now().Sub(claimedAt) > s.o.ClaimGrace
	}
}

// UpdateInput changes a workspace's definition; nil fields stay. Owners may
// change the description; admins everything.
type UpdateInput struct {
	Description *string           `json:"description"`
	Image       *string           `json:"image"`
	Projects    *[]string         `json:"projects"`
	Resources   *events.Resources `json:"resources"`
}

// Update changes a stopped (or never started, or failed) workspace.
func (s *Service) Update(ctx context.Context, c Caller, id string, in UpdateInput) (events.Workspace, error) {
	if !c.Admin && (in.Image != nil || in.Projects != nil || in.Resources != nil) {
		return events.Workspace{}, forbidden("only admins change image, projects or resources")
	}
	var fields []FieldError
	u := events.Updated{Description: in.Description}
	if in.Description != nil {
		fields = append(fields, nonNil(validateDescription(*in.Description))...)
	}
	if in.Image != nil {
		img := trimmed(*in.Image)
		if _, ok := s.proj.Image(img); !ok {
			fields = append(fields, FieldError{Field: "image", Code: "image_not_in_catalog", Message: fmt.Sprintf("image %q is not in the catalog", img)})
		}
		u.Image = &img
	}
	if in.Projects != nil {
		fields = append(fields, validateProjects(s.o.ProjectsRoot, *in.Projects)...)
		p := slices.Clone(*in.Projects)
		if p == nil {
			p = []string{}
		}
		u.Projects = &p
	}
	if in.Resources != nil {
		r, rf := s.o.Bounds.resolveResources(in.Resources)
		fields = append(fields, rf...)
		u.Resources = &r
	}
	if len(fields) > 0 {
		return events.Workspace{}, invalid(fields...)
	}
	if u == (events.Updated{}) {
		return events.Workspace{}, invalid(FieldError{Field: "", Code: "empty_update", Message: "nothing to update"})
	}
	return s.command(ctx, c, id, func(events.Workspace) (events.Payload, string, error) {
		return &u, "updated by " + c.Subject, nil
	})
}

// Start asks for the workspace to run. Starting a running or starting
// workspace changes nothing.
func (s *Service) Start(ctx context.Context, c Caller, id string) (events.Workspace, error) {
	if !c.Admin {
		defer s.owners.Lock(c.Subject)() // a user starts only their own
	}
	return s.command(ctx, c, id, s.startDecision(ctx, c))
}

func (s *Service) startDecision(ctx context.Context, c Caller) decision {
	return func(ws events.Workspace) (events.Payload, string, error) {
		if ws.Status == events.StatusRunning || ws.Status == events.StatusStarting {
			return nil, "", nil
		}
		if err := s.checkRunningQuota(c, ws); err != nil {
			return nil, "", err
		}
		if err := s.engineReady(ctx); err != nil {
			return nil, "", err
		}
		return &events.StartRequested{}, "start requested by " + c.Subject, nil
	}
}

// engineReady refuses starts while provisioners report no reachable engine.
func (s *Service) engineReady(ctx context.Context) error {
	if s.o.Engine == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	err := s.o.Engine.Check(ctx)
	switch {
	case errors.Is(err, ErrEngineUnavailable):
		return &Error{Kind: KindUnavailable, Code: CodeEngineUnavailable, Message: "Docker is not reachable from the provisioner", Err: err}
	case err != nil:
		return unavailable(err) // the status board lives on the bus
	}
	return nil
}

// Stop asks for the workspace to stop. Stopping a stopped workspace changes
// nothing.
func (s *Service) Stop(ctx context.Context, c Caller, id string) (events.Workspace, error) {
	return s.command(ctx, c, id, func(ws events.Workspace) (events.Payload, string, error) {
		switch ws.Status {
		case events.StatusStopped, events.StatusStopping, events.StatusCreated:
			return nil, "", nil
		}
		return &events.StopRequested{}, "stop requested by " + c.Subject, nil
	})
}

// DeleteMode is what a delete does with the home volume.
type DeleteMode string

// Delete modes: nothing a user can see is lost without an explicit purge.
const (
	// DeleteKeep leaves the volume (listed as volume_kept, purgeable later);
	// a volume whose verified archive exists goes, the archive holds it.
	DeleteKeep DeleteMode = "keep"
	// DeleteArchive archives and verifies the volume first, then removes
	// it; an admin can restore the workspace from the archive.
	DeleteArchive DeleteMode = "archive"
	// DeletePurge removes the volume without an archive.
	DeletePurge DeleteMode = "purge"
)

// Delete asks for the workspace's container to be removed, and does with
// its home volume what mode says. On a deleted workspace whose volume was
// kept, purge removes that volume.
func (s *Service) Delete(ctx context.Context, c Caller, id string, mode DeleteMode) (events.Workspace, error) {
	return s.command(ctx, c, id, func(ws events.Workspace) (events.Payload, string, error) {
		switch {
		case ws.Status == events.StatusDeleted && mode == DeletePurge && ws.VolumeKept:
			return &events.PurgeRequested{}, "purge of the kept home volume requested by " + c.Subject, nil
		case ws.Status == events.StatusDeleting || ws.Status == events.StatusDeleted:
			return nil, "", nil
		case mode == DeletePurge:
			return &events.PurgeRequested{}, "delete with purge requested by " + c.Subject, nil
		}
		return &events.DeleteRequested{Archive: mode == DeleteArchive},
			fmt.Sprintf("delete requested by %s (home volume: %s)", c.Subject, mode), nil
	})
}

// LaunchInput optionally names the workspace to launch; the default is the
// caller's subject made into a DNS label.
type LaunchInput struct {
	Name string `json:"name"`
	// Image: a catalog image the caller may launch (docs/api.md); empty:
	// the caller's home workspace, of the default image.
	Image string `json:"image"`
}

// Launch is the "Launch workspace" button: create the caller's workspace
// from the default template (or of the image named) if needed, and start
// it. It is idempotent: one workspace per user and image.
func (s *Service) Launch(ctx context.Context, c Caller, in LaunchInput) (ws events.Workspace, created bool, err error) {
	name, image := trimmed(in.Name), trimmed(in.Image)
	if image != "" {
		if _, ok := s.proj.Image(image); !ok {
			return events.Workspace{}, false, invalid(FieldError{Field: "image", Code: "image_not_in_catalog",
				Message: fmt.Sprintf("image %q is not in the catalog; an admin must add it first", image)})
		}
		if !s.mayUse(c, image) {
			return events.Workspace{}, false, imageNotLaunchable(image)
		}
	}
	if name == "" {
		name = s.launchName(c.Subject, image)
	}
	if f := validateName(name); f != nil {
		return events.Workspace{}, false, invalid(*f)
	}
	for range maxAttempts {
		existing, ok := s.proj.WorkspaceByName(name)
		if ok {
			if existing.Owner != c.Subject {
				return events.Workspace{}, false, nameTaken(name)
			}
			if image != "" && existing.Image != image {
				return events.Workspace{}, false, &Error{Kind: KindConflict, Code: CodeImageMismatch,
					Message: fmt.Sprintf("your workspace %q runs %s, not %s; launch with another name", name, existing.Image, image)}
			}
			ws, err = s.Start(ctx, c, existing.ID)
			return ws, false, err
		}
		def, err := s.launchable(ctx, c, name, image)
		if err != nil {
			return events.Workspace{}, false, err
		}
		ws, err = s.createDefined(ctx, c, def)
		if e, ok := AsError(err); ok && e.Code == CodeNameTaken {
			// Lost a race with a concurrent launch: start whatever won.
			if err := s.awaitName(ctx, name); err != nil {
				return events.Workspace{}, false, err
			}
			continue
		}
		if err != nil {
			return events.Workspace{}, false, err
		}
		ws, err = s.Start(ctx, c, ws.ID)
		return ws, true, err
	}
	return events.Workspace{}, false, &Error{Kind: KindConflict, Code: CodeConcurrent, Message: "the workspace is changing too fast; retry"}
}

// launchable defines the caller's new workspace and checks it may start
// before anything is created, so a refused launch leaves nothing behind
// and does not use up a workspace.
func (s *Service) launchable(ctx context.Context, c Caller, name, image string) (events.Created, error) {
	def, err := s.define(Caller{Subject: c.Subject, anyName: c.Admin, anyImage: c.Admin}, CreateInput{Name: name, Image: image})
	if err != nil {
		return def, err
	}
	if err := s.checkRunningQuota(c, events.Workspace{Owner: c.Subject, Status: events.StatusCreated}); err != nil {
		return def, err
	}
	return def, s.engineReady(ctx)
}

// awaitName waits briefly for a concurrently created workspace to reach the
// projection.
func (s *Service) awaitName(ctx context.Context, name string) error {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := s.proj.WorkspaceByName(name); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nameTaken(name)
}

// LabelFor turns a subject (user id, e-mail) into a DNS label.
func LabelFor(subject string) string {
	b := make([]byte, 0, len(subject))
	dash := false
	for _, r := range subject {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b = append(b, byte(r))
			dash = false
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
			dash = false
		default:
			if !dash && len(b) > 0 {
				b = append(b, '-')
				dash = true
			}
		}
		if len(b) >= 63 {
			break
		}
	}
	out := string(b)
	for len(out) > 0 && out[len(out)-1] == '-' {
		out = out[:len(out)-1]
	}
	if out == "" {
		out = "workspace"
	}
	return out
}

// Get returns one workspace the caller may see.
func (s *Service) Get(_ context.Context, c Caller, id string) (events.Workspace, error) {
	ws, ok := s.proj.Workspace(id)
	if !ok || !visible(c, ws) {
		return events.Workspace{}, errNotFound
	}
	return ws, nil
}

// Authorize decides whether the caller may open workspace id in a browser:
// its owner and admins may; others get forbidden; a workspace that does not
// exist (or is deleted) is not found.
func (s *Service) Authorize(_ context.Context, c Caller, id string) (events.Workspace, error) {
	ws, ok := s.proj.Workspace(id)
	if !ok || ws.Status == events.StatusDeleted {
		return events.Workspace{}, errNotFound
	}
	if !visible(c, ws) {
		return events.Workspace{}, forbidden("only the workspace's owner and admins may open it")
	}
	return ws, nil
}

// ListFilter narrows List.
type ListFilter struct {
	Owner          string
	IncludeDeleted bool
	// VolumeKept lists only deleted workspaces whose home volume is still
	// on the engine (leftovers to purge).
	VolumeKept bool
}

// List returns the workspaces the caller may see: users their own, admins
// all (or one owner's).
func (s *Service) List(_ context.Context, c Caller, f ListFilter) []events.Workspace {
	return s.proj.Workspaces(func(ws events.Workspace) bool {
		if !visible(c, ws) || (f.Owner != "" && ws.Owner != f.Owner) {
			return false
		}
		if f.VolumeKept {
			return ws.Gone() && ws.VolumeKept
		}
		return f.IncludeDeleted || !ws.Gone()
	})
}

// History page sizes: DefaultHistoryLimit when none is asked for, never
// more than MaxHistoryLimit, so one request cannot make the API read and
// hold a workspace's whole log.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// HistoryPage is one page of a workspace's events, oldest first.
type HistoryPage struct {
	Events []events.Envelope
	// Next is the after of the following page; 0 when this page is the last.
	Next uint64
}

// History returns up to limit of the workspace's events whose log sequence
// is greater than after, oldest first.
func (s *Service) History(ctx context.Context, c Caller, id string, after uint64, limit int) (HistoryPage, error) {
	if _, err := s.Get(ctx, c, id); err != nil {
		return HistoryPage{}, err
	}
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	limit = min(limit, MaxHistoryLimit)
	if after == math.MaxUint64 {
		return HistoryPage{Events: []events.Envelope{}}, nil // nothing can follow; after+1 would wrap
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	evs, next, err := s.log.ReadPage(ctx, id, after+1, limit)
	if err != nil {
		return HistoryPage{}, unavailable(fmt.Errorf("history of %s after %d: %w", id, after, err))
	}
	page := HistoryPage{Events: evs}
	if next > 0 {
		page.Next = next - 1 // ReadPage continues from next; after is exclusive
	}
	return page, nil
}
