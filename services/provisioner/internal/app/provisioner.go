package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/capability"
	"github.com/berthdev/berth/pkg/platform/keyed"
	"github.com/berthdev/berth/pkg/platform/projectpath"
	"github.com/berthdev/berth/pkg/platform/wsurl"
)

// ErrConflict is what Log.Append returns (wrapped) when the workspace moved
// past the expected version: someone else wrote first.
var ErrConflict = errors.New("the workspace changed since it was read")

// Log is the audit log as the provisioner needs it: it only appends; what
// the log says comes from State. A lost race returns an error wrapping
// ErrConflict.
type Log interface {
	Append(ctx context.Context, e events.Envelope, expected uint64) (uint64, error)
}

// State is the provisioner's projection of the log, kept current by a
// follower (one ordered consumer for the whole service).
type State interface {
	Workspace(id string) (events.Workspace, bool)
	// Image answers which capabilities a catalog image may have back.
	Image(ref string) (events.CatalogImage, bool)
	// WaitFor returns once the projection has seen log message seq.
	WaitFor(ctx context.Context, seq uint64) error
	// Await returns once cond holds, checked whenever the projection moves.
	Await(ctx context.Context, cond func() bool) error
}

// Mount is one project folder bind-mounted into the workspace.
type Mount struct {
	Source string // absolute host path, symlinks resolved
	Target string // path in the container
}

// Spec is everything the runtime needs to create a workspace's container.
type Spec struct {
	ID        string
	Name      string
	Owner     string
	Image     string
	Mounts    []Mount
	Resources events.Resources
	CapAdd    []string
	Env       []string
	// From the image's profile; zero values take the runtime's defaults.
	Port   int
	Health string   // HTTP path, or "tcp"
	Cmd    []string // replaces the image's CMD
	User   string   // numeric uid[:gid], never 0
	Home   string   // mount point of the home volume
	// OnAddress, if set, is called by EnsureRunning at most once, as soon
	// as the started container has its address and before its health
	// check passes (the provisioner records it as addressed).
	OnAddress func(events.Running)
}

// Runtime carries out actions on the container engine. Every method is
// idempotent: the provisioner may call it again after a crash or redelivery.
type Runtime interface {
	EnsureRunning(ctx context.Context, s Spec) (events.Running, error)
	EnsureStopped(ctx context.Context, id string) (exitCode int, err error)
	EnsureRemoved(ctx context.Context, id string, purgeHome bool) error
	// ExportHome hands write the stopped workspace's home volume (and
	// project folders if asked) as archive sources.
	ExportHome(ctx context.Context, s Spec, projects bool, write func([]ArchiveSource) error) error
	// ImportHome recreates the home volume from the tar stream write
	// produces (entries under VolumeTree + "/").
	ImportHome(ctx context.Context, s Spec, write func(io.Writer) error) error
}

// Preparer is a Runtime that can create a container without starting it.
type Preparer interface {
	EnsureCreated(ctx context.Context, s Spec) error
}

// Failure is an outcome to record as a "failed" event rather than retry:
// retrying cannot help until someone acts on Message.
type Failure struct {
	Code    string
	Message string
}

func (f *Failure) Error() string { return f.Code + ": " + f.Message }

// Options configure the provisioner.
type Options struct {
	ProjectsRoot string
	// Prepare creates a defined workspace's container before its first
	// start (BERTH_PREPARE_CONTAINERS).
	Prepare bool
	// HomeDir is where the home volume is mounted; projects go under
	// HomeDir/project/<folder>.
	HomeDir string
	// Routing decides the base path the workspace serves under.
	Routing wsurl.Mode
	// Archives holds workspace archives (<id>/<version>.tar.gz); needed
	// to archive and restore.
	Archives Archives
	// ArchiveProjects also puts the project folders in archives (they are
	// never restored: they belong to the host).
	ArchiveProjects bool
	// StopDrain is how long after a stop or delete was asked for the
	// container is left alone: router-sync removes the route on the same
	// event, and Traefik must have dropped it before the container goes,
	// or requests in flight dial an address that no longer answers (a 4-5 s
	// hang, then 502).
	StopDrain time.Duration
	// Max bounds every resource limit (the admin's BERTH_MAX_*); zero
	// fields are not checked.
	Max events.Resources
	// FollowTimeout bounds the wait for the projection to reach a message
	// (or a conflicting writer's event) before the attempt is retried.
	FollowTimeout time.Duration
	Now           func() time.Time
	// Meter records launch latency and archives (nil: nothing).
	Meter metric.Meter
	// HostSpace refuses starts while a disk the platform needs runs low
	// (nil: never).
	HostSpace HostSpace
}

// HostSpace reports whether the host has room for another workspace: the
// disk holding the log and the engine's data must not fill up.
type HostSpace interface {
	// Short says why there is no room, or ok.
	Short() (why string, short bool)
}

// Provisioner turns a workspace's state into containers and records what
// it observed.
type Provisioner struct {
	log    Log
	state  State
	rt     Runtime
	o      Options
	logger *slog.Logger
	// busy serialises work on one workspace across the consumer's workers,
	// the start-up resume and the reconciler.
	busy    keyed.Mutex
	metrics instruments
}

// New returns a Provisioner.
func New(log Log, state State, rt Runtime, logger *slog.Logger, o Options) *Provisioner {
	if o.HomeDir == "" {
		o.HomeDir = "/home/coder"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FollowTimeout == 0 {
		o.FollowTimeout = 30 * time.Second
	}
	return &Provisioner{log: log, state: state, rt: rt, o: o, logger: logger, metrics: newInstruments(o.Meter)}
}

const source = "berth/provisioner"

// Handle brings workspace id to the state its log asks for and appends the
// observation. seen is the log sequence that prompted the call (0: none):
// the state acted on is never older than it. lastAttempt turns a transient
// error (engine unreachable) into a recorded failure instead of another
// retry. A returned error means "retry later"; nothing has been recorded
// for it.
func (p *Provisioner) Handle(ctx context.Context, id string, seen uint64, lastAttempt bool) error {
	unlock := p.busy.Lock(id)
	defer unlock()
	if err := p.follow(ctx, func(ctx context.Context) error { return p.state.WaitFor(ctx, seen) }); err != nil {
		return fmt.Errorf("handle %s: %w", id, err)
	}
	for range 5 {
		ws, ok := p.state.Workspace(id)
		if !ok {
			return nil // nothing the fold accepted: nothing to provision
		}
		act := Plan(ws)
		if act == ActionNone {
			return nil
		}
		if act == ActionPrepare {
			p.prepare(ctx, ws)
			return nil
		}
		// ws.Version moves if an addressed event is recorded on the way.
		payload, reason, err := p.outcome(ctx, &ws, act, lastAttempt)
		if err != nil {
			return err
		}
		// The observation answers the workspace's last request: same
		// correlation and trace, causation = that request.
		e, err := events.New(ws.ID, payload, ws.Cause.Follow(events.Meta{Source: source, Actor: "service:provisioner", Reason: reason}), p.o.Now())
		if err != nil {
			return err
		}
		seq, err := p.log.Append(ctx, e, ws.Version)
		if errors.Is(err, ErrConflict) {
			// Someone asked for something else meanwhile: plan again on
			// the state that includes their event.
			if err := p.follow(ctx, func(ctx context.Context) error { return p.state.Await(ctx, p.movedPast(id, ws.Version)) }); err != nil {
				return fmt.Errorf("handle %s after a conflict: %w", id, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("record %s for %s: %w", payload.EventType(), ws.Name, err)
		}
		p.metrics.recorded(ctx, ws, payload, p.o.Now())
		// Hold the workspace until the projection has the observation, so
		// the next message of this workspace plans on it instead of doing
		// the work again.
		if err := p.follow(ctx, func(ctx context.Context) error { return p.state.WaitFor(ctx, seq) }); err != nil {
			p.logger.Debug("projection behind the recorded observation", "workspace", ws.Name, "seq", seq, "err", err)
		}
		p.logger.Info("workspace reconciled", "workspace", ws.Name, "id", ws.ID, "action", act.String(), "recorded", payload.EventType())
		return nil
	}
	return fmt.Errorf("workspace %s kept changing; will retry", id)
}

// TryExclusive takes the workspace's lock if no handler holds it, so the
// reconciler never acts beside a handler.
func (p *Provisioner) TryExclusive(id string) (unlock func(), ok bool) { return p.busy.TryLock(id) }

// follow runs a wait on the projection, bounded by FollowTimeout.
func (p *Provisioner) follow(ctx context.Context, wait func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.o.FollowTimeout)
	defer cancel()
	return wait(ctx)
}

// BasePath is where a workspace's app is served from in routing mode: its
// path prefix in path mode, the root of its own host in subdomain mode
// (BERTH_BASE_PATH, and what a profile's {base} stands for).
func BasePath(routing wsurl.Mode, name string) string {
	if routing == wsurl.ModePath {
		return wsurl.PathPrefix(name)
	}
	return ""
}

func (p *Provisioner) movedPast(id string, version uint64) func() bool {
	return func() bool {
		ws, _ := p.state.Workspace(id)
		return ws.Version > version
	}
}

func (p *Provisioner) execute(ctx context.Context, wsp *events.Workspace, act Action) (events.Payload, string, error) {
	ws := *wsp
	switch act {
	case ActionEnsureRunning:
		spec, err := p.spec(ws)
		if err != nil {
			return nil, "", err
		}
		if err := p.room(); err != nil {
			return nil, "", err
		}
		if ws.Status == events.StatusStarting { // addressed is legal only then
			spec.OnAddress = func(r events.Running) { p.announce(ctx, wsp, r) }
		}
		running, err := p.rt.EnsureRunning(ctx, spec)
		if err != nil {
			return nil, "", err
		}
		return &running, "container answers its health check", nil
	case ActionEnsureStopped:
		if err := p.drain(ctx, ws); err != nil {
			return nil, "", err
		}
		code, err := p.rt.EnsureStopped(ctx, ws.ID)
		if err != nil {
			return nil, "", err
		}
		return &events.Stopped{ExitCode: code}, "container stopped", nil
	case ActionEnsureRemoved:
		return p.remove(ctx, ws)
	case ActionArchive:
		return p.archiveHome(ctx, ws)
	case ActionRestore:
		return p.restoreHome(ctx, ws)
	}
	return nil, "", fmt.Errorf("unknown action %d", act)
}

// room refuses a start (before anything is created) while the host is
// short of disk space.
func (p *Provisioner) room() error {
	if p.o.HostSpace == nil {
		return nil
	}
	if why, short := p.o.HostSpace.Short(); short {
		return &Failure{Code: "host_disk_low", Message: why + "; nothing was created: free space on the host (or lower BERTH_MIN_FREE_DISK), then start the workspace again"}
	}
	return nil
}

// announce records that the starting workspace's container has its address,
// so router-sync routes it while the health check runs, and moves
// ws.Version past it for the observation that follows. If someone wrote
// first (a stop), nothing is recorded: the observation's append then
// conflicts and plans again, as it would have anyway.
func (p *Provisioner) announce(ctx context.Context, ws *events.Workspace, r events.Running) {
	a := events.Addressed(r)
	e, err := events.New(ws.ID, &a, ws.Cause.Follow(events.Meta{Source: source, Actor: "service:provisioner", Reason: "container started; waiting for its health check"}), p.o.Now())
	if err != nil {
		return
	}
	seq, err := p.log.Append(ctx, e, ws.Version)
	if err != nil {
		p.logger.Debug("address not recorded", "workspace", ws.Name, "err", err)
		return
	}
	ws.Version = seq
}

// prepare creates a defined workspace's container ahead of its first
// start, if the runtime can (Preparer). A failure is only logged: the
// start creates the container anyway, and records what fails then.
func (p *Provisioner) prepare(ctx context.Context, ws events.Workspace) {
	pr, ok := p.rt.(Preparer)
	if !ok || !p.o.Prepare {
		return
	}
	spec, err := p.spec(ws)
	if err == nil {
		err = p.room()
	}
	if err == nil {
		err = pr.EnsureCreated(ctx, spec)
	}
	if err != nil {
		p.logger.Info("container not prepared ahead of the first start", "workspace", ws.Name, "err", err)
		return
	}
	p.logger.Debug("container prepared", "workspace", ws.Name)
}

// remove deletes the workspace's container. The home volume goes only with
// an explicit purge or once a verified archive holds its contents: one
// made before (the reaper's path) or, for a delete that asked for it, made
// now, after stopping the container and before removing anything, so a
// failed archive leaves everything as it was.
func (p *Provisioner) remove(ctx context.Context, ws events.Workspace) (events.Payload, string, error) {
	if err := p.drain(ctx, ws); err != nil {
		return nil, "", err
	}
	var made *events.ArchiveInfo
	if ws.ArchiveFirst && !verified(ws.Archive) {
		if _, err := p.rt.EnsureStopped(ctx, ws.ID); err != nil {
			return nil, "", err
		}
		payload, _, err := p.archiveHome(ctx, ws)
		if err != nil {
			return nil, "", err
		}
		a := payload.(*events.Archived)
		made = &events.ArchiveInfo{Path: a.Path, SizeBytes: a.SizeBytes, SHA256: a.SHA256}
	}
	archive := cmp.Or(made, ws.Archive)
	dropVolume := ws.Purge || verified(archive)
	if err := p.rt.EnsureRemoved(ctx, ws.ID, dropVolume); err != nil {
		return nil, "", err
	}
	reason := "container removed; home volume kept (purge it to remove it)"
	switch {
	case ws.Purge:
		reason = "container and home volume removed (purge)"
	case verified(archive):
		reason = "container and home volume removed; archive " + archive.Path + " kept"
	}
	return &events.Deleted{VolumeRemoved: dropVolume, Archive: made}, reason, nil
}

func verified(a *events.ArchiveInfo) bool { return a != nil && a.SHA256 != "" }

// drain waits until StopDrain has passed since the workspace's request
// (no wait for an old one, e.g. after a restart). The request's time comes
// from its writer's clock, so the wait never exceeds StopDrain however far
// ahead that clock is.
func (p *Provisioner) drain(ctx context.Context, ws events.Workspace) error {
	wait := min(ws.StatusSince.Add(p.o.StopDrain).Sub(p.o.Now()), p.o.StopDrain)
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// outcome carries out act and returns the event to record: the
// observation, or the failure. A Failure is recorded at once, any other
// error only on the last attempt; before that it is returned, to retry.
func (p *Provisioner) outcome(ctx context.Context, wsp *events.Workspace, act Action, lastAttempt bool) (events.Payload, string, error) {
	ws := *wsp
	// The engine calls (traced by the Docker client) are children of this.
	ctx, span := otel.Tracer("github.com/berthdev/berth/services/provisioner").Start(ctx, "provision "+act.String(),
		trace.WithAttributes(attribute.String("berth.workspace.id", ws.ID), attribute.String("berth.workspace.name", ws.Name)))
	defer span.End()
	payload, reason, err := p.execute(ctx, wsp, act)
	if err == nil {
		return payload, reason, nil
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, "provisioning failed")
	var f *Failure
	switch {
	case errors.As(err, &f):
	case lastAttempt:
		f = &Failure{Code: "engine_unavailable", Message: "the container engine did not answer after several retries: " + err.Error()}
	default:
		return nil, "", err
	}
	return failure(act, f), f.Message, nil
}

// failure is the event that records f for act: archive and restore
// failures have their own events (the data is untouched; the lifecycle goes
// back), everything else marks the workspace failed.
func failure(act Action, f *Failure) events.Payload {
	switch act {
	case ActionArchive:
		return &events.ArchiveFailed{Message: f.Message}
	case ActionRestore:
		return &events.RestoreFailed{Message: f.Message}
	}
	return &events.Failed{Code: f.Code, Message: f.Message, Retryable: true}
}

// archiveHome writes the workspace's archive and verifies it by reading it
// back. The file name is fixed by the log position of the request, so a
// retried archive replaces its own half-written attempt and never an
// older archive.
func (p *Provisioner) archiveHome(ctx context.Context, ws events.Workspace) (events.Payload, string, error) {
	spec, err := p.volumeSpec(ws)
	if err != nil {
		return nil, "", err
	}
	rel := path.Join(ws.ID, strconv.FormatUint(ws.Version, 10)+".tar.gz")
	began := time.Now()
	var written ArchiveInfo
	err = p.rt.ExportHome(ctx, spec, p.o.ArchiveProjects, func(src []ArchiveSource) error {
		var err error
		if written, err = p.o.Archives.Create(rel, src); err != nil {
			return &Failure{Code: "archive_failed", Message: fmt.Sprintf("writing the archive under %s failed: %v; the workspace and its data are unchanged", p.o.Archives.Dir(), err)}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	got, err := p.o.Archives.Verify(written)
	if err != nil {
		return nil, "", &Failure{Code: "archive_unverified", Message: fmt.Sprintf("reading the archive back failed: %v; the workspace and its data are unchanged", err)}
	}
	p.metrics.archiveTime.Record(ctx, time.Since(began).Seconds())
	p.metrics.archiveBytes.Record(ctx, got.Size)
	return &events.Archived{Path: rel, SizeBytes: got.Size, SHA256: got.SHA256},
		fmt.Sprintf("archived %d entries (%d bytes) and verified by reading back", got.Files, got.Size), nil
}

// restoreHome recreates the home volume from the workspace's archive.
func (p *Provisioner) restoreHome(ctx context.Context, ws events.Workspace) (events.Payload, string, error) {
	if ws.Archive == nil || ws.Archive.SHA256 == "" {
		return nil, "", &Failure{Code: "no_archive", Message: "the workspace has no verified archive to restore from"}
	}
	spec, err := p.volumeSpec(ws)
	if err != nil {
		return nil, "", err
	}
	want := ArchiveInfo{Path: ws.Archive.Path, Size: ws.Archive.SizeBytes, SHA256: ws.Archive.SHA256}
	files := 0
	err = p.rt.ImportHome(ctx, spec, func(w io.Writer) error {
		var err error
		if files, err = p.o.Archives.Extract(want, "home", VolumeTree, w); err != nil {
			return &Failure{Code: "archive_unreadable", Message: fmt.Sprintf("the archive cannot be restored: %v; it was left as it is", err)}
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return &events.Restored{Path: want.Path, SHA256: want.SHA256, Files: files},
		fmt.Sprintf("home volume recreated from %s (%d entries, checksum verified)", want.Path, files), nil
}

// VolumeTree is the top folder of the tar stream ImportHome takes: the
// volume's root.
const VolumeTree = "data"

// volumeSpec is the spec of the volume helper: projects are mounted only if
// they are archived (and must then be valid).
func (p *Provisioner) volumeSpec(ws events.Workspace) (Spec, error) {
	if p.o.ArchiveProjects {
		return p.spec(ws)
	}
	return Spec{ID: ws.ID, Name: ws.Name, Owner: ws.Owner, Image: ws.Image}, nil
}

// policy checks what the API checked, again: the log may hold old events
// or events written with a leaked credential, and the provisioner is the
// one holding the Docker socket. The image must be in the catalog now,
// every limit set and within the admin's bounds, every capability the
// catalog grants on the allow-list.
func (p *Provisioner) policy(ws events.Workspace) (events.CatalogImage, error) {
	violation := func(format string, args ...any) error {
		return &Failure{Code: "policy_violation", Message: fmt.Sprintf(format, args...)}
	}
	img, ok := p.state.Image(ws.Image)
	if !ok {
		return img, violation("image %s is not in the catalog; an admin must add it, or change the workspace's image", ws.Image)
	}
	r, m := ws.Resources, p.o.Max
	if r.MemoryBytes <= 0 || r.MilliCPUs <= 0 || r.Pids <= 0 {
		return img, violation("the workspace has no limit on memory, CPU or processes (%+v); an admin must set them", r)
	}
	if r.DiskBytes < 0 || (m.DiskBytes > 0 && r.DiskBytes > m.DiskBytes) {
		return img, violation("the workspace's disk limit %d bytes is outside the bound %d (BERTH_MAX_DISK); an admin must lower it", r.DiskBytes, m.DiskBytes)
	}
	if (m.MemoryBytes > 0 && r.MemoryBytes > m.MemoryBytes) || (m.MilliCPUs > 0 && r.MilliCPUs > m.MilliCPUs) || (m.Pids > 0 && r.Pids > m.Pids) {
		return img, violation("the workspace's limits %+v exceed the bounds %+v; an admin must lower them", r, m)
	}
	for _, c := range img.CapAdd {
		if err := capability.Check(c); err != nil {
			return img, violation("catalog image %s: %v", ws.Image, err)
		}
	}
	// The profile too: an entry written with a leaked credential could ask
	// for root, a home over /etc, or Berth's own variables.
	if problems := img.Profile.Check(); len(problems) > 0 {
		return img, violation("catalog image %s: %s: %s", ws.Image, problems[0].Field, problems[0].Message)
	}
	return img, nil
}

// spec builds the container spec, re-validating every project folder: the
// API checked them, but the provisioner is the one holding the Docker
// socket, so it does not take the log's word for it.
func (p *Provisioner) spec(ws events.Workspace) (Spec, error) {
	img, err := p.policy(ws)
	if err != nil {
		return Spec{}, err
	}
	prof := img.Profile
	home := p.o.HomeDir
	if prof.Home != "" {
		home = prof.Home
	}
	res := ws.Resources
	res.DiskBytes = DiskLimit(ws.Resources, p.o.Max.DiskBytes)
	base := BasePath(p.o.Routing, ws.Name)
	s := Spec{ID: ws.ID, Name: ws.Name, Owner: ws.Owner, Image: ws.Image, Resources: res,
		Port: prof.Port, Health: prof.HealthPath(base), Cmd: slices.Clone(prof.Command), User: prof.User, Home: home}
	for _, rel := range ws.Projects {
		src, err := projectpath.Resolve(p.o.ProjectsRoot, rel)
		if err != nil {
			return Spec{}, &Failure{Code: "project_invalid", Message: fmt.Sprintf("project folder cannot be mounted: %v; an admin must fix the workspace's projects", err)}
		}
		s.Mounts = append(s.Mounts, Mount{Source: src, Target: path.Join(home, "project", rel)})
	}
	for _, c := range img.CapAdd {
		s.CapAdd = append(s.CapAdd, capability.Normalize(c))
	}
	s.Env = []string{"BERTH_WORKSPACE_ID=" + ws.ID, "BERTH_WORKSPACE_NAME=" + ws.Name, "BERTH_BASE_PATH=" + base}
	if prof.Home != "" {
		s.Env = append(s.Env, "HOME="+home)
	}
	keys := slices.Sorted(maps.Keys(prof.Env)) // sorted: the spec hash must not change with map order
	for _, k := range keys {
		s.Env = append(s.Env, k+"="+prof.Env[k])
	}
	return s, nil
}
