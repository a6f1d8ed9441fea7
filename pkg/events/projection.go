package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// CatalogImage is one entry of the image allow-list.
type CatalogImage struct {
	Ref         string       `json:"ref"`
	Description string       `json:"description"`
	CapAdd      []string     `json:"cap_add"`
	Profile     ImageProfile `json:"profile"`
	AddedBy     string       `json:"added_by"`
	AddedAt     time.Time    `json:"added_at"`
	// Launchable: users may launch it themselves (ImageUpdated).
	Launchable bool `json:"launchable"`
}

// Anomaly records an event in the log that the fold rejected. Writers
// validate before appending, so an anomaly means a foreign or buggy writer;
// it is kept for operators instead of stopping the projection.
type Anomaly struct {
	Sequence uint64 `json:"sequence"`
	EventID  string `json:"event_id"`
	Subject  string `json:"subject"`
	Error    string `json:"error"`
}

// Projection is the in-memory state of every workspace and the catalog,
// folded from the log. It is safe for concurrent use and idempotent: an
// event whose sequence is not newer than what its subject already applied
// is ignored, so redeliveries and a writer's own read-back are harmless.
type Projection struct {
	mu             sync.RWMutex
	workspaces     map[string]Workspace
	byName         map[string]string
	catalog        map[string]CatalogImage
	catalogVersion uint64
	defaultImage   string // an admin's choice (ImageUpdated); "" for the configured one
	quotas         map[string]QuotaSet
	systems        map[string]SystemRegistered
	usersVersion   uint64
	lastSeq        uint64
	anomalies      []Anomaly
	// followed is the follower's watermark (see Advance); wake is closed
	// and replaced when it moves, waking WaitFor callers.
	followed uint64
	wake     chan struct{}
}

// NewProjection returns an empty projection.
func NewProjection() *Projection {
	return &Projection{
		workspaces: map[string]Workspace{},
		byName:     map[string]string{},
		catalog:    map[string]CatalogImage{},
		quotas:     map[string]QuotaSet{},
		systems:    map[string]SystemRegistered{},
	}
}

// Apply folds one event from the log. It reports whether the event changed
// the projection; a rejected event is recorded as an anomaly and returned as
// the error.
func (p *Projection) Apply(e Envelope) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Sequence > p.lastSeq {
		p.lastSeq = e.Sequence
	}
	switch e.Subject {
	case CatalogSubject:
		return p.applyCatalog(e)
	case UsersSubject:
		return p.applyUsers(e)
	}
	ws := p.workspaces[e.Subject]
	if e.Sequence != 0 && e.Sequence <= ws.Version {
		return false, nil
	}
	next, err := Apply(ws, e)
	if err != nil {
		p.anomaly(e, err)
		p.passOver(e.Subject, e.Sequence)
		return false, err
	}
	p.workspaces[next.ID] = next
	if ws.Name != "" && ws.Name != next.Name {
		delete(p.byName, ws.Name)
	}
	if next.Gone() {
		if p.byName[next.Name] == next.ID {
			delete(p.byName, next.Name)
		}
	} else if holder, taken := p.byName[next.Name]; !taken || holder == next.ID {
		// A restored workspace gets its name back only if nobody else took
		// it meanwhile (writers check the name claim before restoring).
		p.byName[next.Name] = next.ID
	}
	return true, nil
}

var (
	errCatalogType  = errors.New("not a catalog event")
	errNotInCatalog = errors.New("the image is not in the catalog")
)

// rejectCatalog records a catalog event the fold cannot apply, and moves
// the catalog's version past it.
func (p *Projection) rejectCatalog(e Envelope, err error) (bool, error) {
	p.anomaly(e, err)
	p.passOver(e.Subject, e.Sequence)
	return false, err
}

func (p *Projection) applyCatalog(e Envelope) (bool, error) {
	if e.Sequence != 0 && e.Sequence <= p.catalogVersion {
		return false, nil
	}
	pl, err := e.Payload()
	if err != nil {
		return p.rejectCatalog(e, err)
	}
	switch pl := pl.(type) {
	case *ImageAdded:
		img := CatalogImage{Ref: pl.Ref, Description: pl.Description, CapAdd: slices.Clone(pl.CapAdd), AddedBy: e.Actor, AddedAt: e.Time,
			Launchable: pl.Launchable}
		if pl.Profile != nil {
			img.Profile = *pl.Profile
			// Readers get the catalog by value: nothing of it is shared.
			img.Profile.Command, img.Profile.Env = slices.Clone(pl.Profile.Command), maps.Clone(pl.Profile.Env)
		}
		p.catalog[pl.Ref] = img
	case *ImageRemoved:
		delete(p.catalog, pl.Ref)
		if p.defaultImage == pl.Ref {
			p.defaultImage = "" // back to the configured default
		}
	case *ImageUpdated:
		img, ok := p.catalog[pl.Ref]
		if !ok {
			return p.rejectCatalog(e, errNotInCatalog)
		}
		if pl.Launchable != nil {
			img.Launchable = *pl.Launchable
			p.catalog[pl.Ref] = img
		}
		switch {
		case pl.Default == nil:
		case *pl.Default:
			p.defaultImage = pl.Ref
		case p.defaultImage == pl.Ref:
			p.defaultImage = ""
		}
	default:
		return p.rejectCatalog(e, errCatalogType)
	}
	p.catalogVersion = e.Sequence
	return true, nil
}

var errUsersType = errors.New("not a user settings event")

func (p *Projection) applyUsers(e Envelope) (bool, error) {
	if e.Sequence != 0 && e.Sequence <= p.usersVersion {
		return false, nil
	}
	pl, err := e.Payload()
	if err == nil {
		err = p.applyUser(pl)
	}
	if err != nil {
		p.anomaly(e, err)
		p.passOver(e.Subject, e.Sequence)
		return false, err
	}
	p.usersVersion = e.Sequence
	return true, nil
}

// applyUser folds one user-settings payload.
func (p *Projection) applyUser(pl Payload) error {
	switch v := pl.(type) {
	case *QuotaSet:
		switch {
		case v.Subject == "":
			return errors.New("quota_set without a subject")
		case v.Workspaces == nil && v.Running == nil:
			delete(p.quotas, v.Subject)
		default:
			p.quotas[v.Subject] = *v
		}
	case *SystemRegistered:
		if !ValidSystemName(v.Name) {
			return fmt.Errorf("system_registered: bad name %q", v.Name)
		}
		p.systems[v.Name] = *v
	case *SystemRevoked:
		delete(p.systems, v.Name)
	default:
		return errUsersType
	}
	return nil
}

// System returns a registered system's rights.
func (p *Projection) System(name string) (SystemRegistered, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s, ok := p.systems[name]
	return s, ok
}

// Systems returns every registered system, by name.
func (p *Projection) Systems() []SystemRegistered {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]SystemRegistered, 0, len(p.systems))
	for _, s := range p.systems {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b SystemRegistered) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Quota returns a user's quota override, and the version of the user
// settings (the expected last sequence of UsersSubject).
func (p *Projection) Quota(subject string) (QuotaSet, bool, uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	q, ok := p.quotas[subject]
	return q, ok, p.usersVersion
}

// passOver moves a subject's version past a message the fold rejected:
// the version is the expected last sequence of the subject for the next
// append, so a foreign message at the tail must not make every later
// append conflict (a wedged workspace). The state itself is unchanged.
func (p *Projection) passOver(subject string, seq uint64) {
	if seq == 0 {
		return
	}
	switch subject {
	case CatalogSubject:
		p.catalogVersion = max(p.catalogVersion, seq)
		return
	case UsersSubject:
		p.usersVersion = max(p.usersVersion, seq)
		return
	}
	if ws, ok := p.workspaces[subject]; ok && seq > ws.Version {
		ws.Version = seq
		p.workspaces[subject] = ws
	}
}

// Skip records a log message that could not even be decoded (natsSubject
// is its NATS subject) and passes over it like a rejected event.
func (p *Projection) Skip(natsSubject string, seq uint64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	subject := natsSubject
	if id := WorkspaceIDFromSubject(natsSubject); id != "" {
		subject = id
	}
	p.anomalies = append(p.anomalies, Anomaly{Sequence: seq, Subject: subject, Error: err.Error()})
	p.passOver(subject, seq)
}

// Advance records that the follower has handled every log message up to
// seq (applied, rejected or skipped) and wakes WaitFor callers.
func (p *Projection) Advance(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq <= p.followed {
		return
	}
	p.followed = seq
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// Followed is the follower's watermark (see Advance).
func (p *Projection) Followed() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.followed
}

// WaitFor blocks until the follower has handled log message seq, or ctx
// ends. A consumer handed message seq calls it before acting on the
// projection, so it never acts on a state older than its message.
func (p *Projection) WaitFor(ctx context.Context, seq uint64) error {
	return p.Await(ctx, func() bool { return p.Followed() >= seq })
}

// Await blocks until cond holds, checking it again each time the follower
// advances, or until ctx ends.
func (p *Projection) Await(ctx context.Context, cond func() bool) error {
	for {
		p.mu.Lock()
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.mu.Unlock()
		// Checked after taking the channel: an Advance in between closes
		// it, so no wake-up is missed.
		if cond() {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the log to be followed: %w", ctx.Err())
		}
	}
}

func (p *Projection) anomaly(e Envelope, err error) {
	p.anomalies = append(p.anomalies, Anomaly{Sequence: e.Sequence, EventID: e.ID, Subject: e.Subject, Error: err.Error()})
}

// Workspace returns one workspace by id.
func (p *Projection) Workspace(id string) (Workspace, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	ws, ok := p.workspaces[id]
	return ws, ok
}

// WorkspaceByName returns the live (not deleted) workspace with that name.
func (p *Projection) WorkspaceByName(name string) (Workspace, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	id, ok := p.byName[name]
	if !ok {
		return Workspace{}, false
	}
	return p.workspaces[id], true
}

// Workspaces returns the workspaces keep accepts, sorted by name then id.
// A nil keep returns them all.
func (p *Projection) Workspaces(keep func(Workspace) bool) []Workspace {
	p.mu.RLock()
	out := make([]Workspace, 0, len(p.workspaces))
	for _, ws := range p.workspaces {
		if keep == nil || keep(ws) {
			out = append(out, ws)
		}
	}
	p.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if c := strings.Compare(out[i].Name, out[j].Name); c != 0 {
			return c < 0
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Image returns a catalog entry by reference.
func (p *Projection) Image(ref string) (CatalogImage, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	img, ok := p.catalog[ref]
	return img, ok
}

// Catalog returns the allow-list sorted by reference, and its version (the
// expected last sequence of CatalogSubject).
func (p *Projection) Catalog() ([]CatalogImage, uint64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]CatalogImage, 0, len(p.catalog))
	for _, img := range p.catalog {
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out, p.catalogVersion
}

// DefaultImage is the image an admin made the default ("" if none: the
// installation's configured default applies).
func (p *Projection) DefaultImage() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.defaultImage
}

// LastSequence is the highest stream sequence the projection has seen.
func (p *Projection) LastSequence() uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.lastSeq
}

// Anomalies returns the events the fold rejected, oldest first.
func (p *Projection) Anomalies() []Anomaly {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.anomalies)
}
