package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/events/auditchain"
)

// AuditLog is the whole log as the audit reads it. Reads leave nothing
// behind on the server.
type AuditLog interface {
	// ReadLog returns up to limit events of every subject from sequence
	// from on, and where to continue (0: nothing more).
	ReadLog(ctx context.Context, from uint64, limit int) ([]events.Envelope, uint64, error)
	// SequenceAt is the first sequence stored at or after t (the one after
	// the last when none is).
	SequenceAt(ctx context.Context, t time.Time) (uint64, error)
	LastSequence(ctx context.Context) (uint64, error)
}

// Audit page sizes, and how many events one request may read to fill a
// page: a filter that matches little returns a shorter page and a cursor
// rather than reading the whole log in one request.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	auditScanBudget   = 20_000
	// clockSkew is how far an event's time (its writer's clock: the API,
	// a provisioner, a reaper) may be from the log's order. A scan bounded
	// by time stops only this far past the bound; the filter decides.
	clockSkew = 5 * time.Minute
)

// AuditQuery filters the log. Zero fields match everything.
type AuditQuery struct {
	Actor     string
	Type      string // full type or its last part ("start_requested")
	Workspace string // id or name
	Since     time.Time
	Until     time.Time // inclusive
	// Cursor continues a previous page (its Next); Newest reads backwards.
	Cursor uint64
	Newest bool
	Limit  int
}

// AuditEntry is one event, as an auditor reads it.
type AuditEntry struct {
	Sequence      uint64
	Time          time.Time
	Actor         string
	Action        string // the type's last part: "start_requested"
	Type          events.Type
	WorkspaceID   string
	WorkspaceName string
	Reason        string
	CorrelationID string
	CausationID   string
	Source        string
	// Origin is who acted: "user" (an HTTP request), "system" (another
	// system through the intake), "service" (Berth on its own, with the
	// reason saying why).
	Origin string
}

// AuditPage is one page; Next continues it (0: nothing more).
type AuditPage struct {
	Entries []AuditEntry
	Next    uint64
}

func (c Caller) mayAudit() bool { return c.Admin || c.Auditor }

// Audit returns the log's events that match q, oldest first (newest first
// with q.Newest), for admins and auditors.
func (s *Service) Audit(ctx context.Context, c Caller, q AuditQuery) (AuditPage, error) {
	if !c.mayAudit() {
		return AuditPage{}, forbidden("only admins and auditors read the audit log")
	}
	if q.Limit <= 0 {
		q.Limit = DefaultAuditLimit
	}
	q.Limit = min(q.Limit, MaxAuditLimit)
	ctx, cancel := context.WithTimeout(ctx, 4*s.o.AppendTimeout)
	defer cancel()
	match := s.auditFilter(q)
	var (
		page AuditPage
		err  error
	)
	if q.Newest {
		page, err = s.auditBackward(ctx, q, match)
	} else {
		page, err = s.auditForward(ctx, q, match)
	}
	if err != nil {
		return AuditPage{}, unavailable(fmt.Errorf("audit: %w", err))
	}
	if page.Entries == nil {
		page.Entries = []AuditEntry{}
	}
	return page, nil
}

// auditFilter is q's test of one event.
func (s *Service) auditFilter(q AuditQuery) func(events.Envelope) bool {
	wsID := q.Workspace
	if ws, ok := s.proj.WorkspaceByName(q.Workspace); ok {
		wsID = ws.ID
	}
	return func(e events.Envelope) bool {
		switch {
		case q.Actor != "" && e.Actor != q.Actor:
			return false
		case q.Type != "" && string(e.Type) != q.Type && events.TypeToken(e.Type) != q.Type:
			return false
		case wsID != "" && e.Subject != wsID:
			return false
		case !q.Since.IsZero() && e.Time.Before(q.Since):
			return false
		}
		return q.Until.IsZero() || !e.Time.After(q.Until)
	}
}

func (s *Service) auditForward(ctx context.Context, q AuditQuery, match func(events.Envelope) bool) (AuditPage, error) {
	from := q.Cursor + 1
	if q.Cursor == 0 {
		at, err := s.startAt(ctx, q.Since)
		if err != nil {
			return AuditPage{}, err
		}
		from = at
	}
	var page AuditPage
	for scanned := 0; scanned < auditScanBudget; {
		evs, next, err := s.log.ReadLog(ctx, from, readWindow(q.Limit-len(page.Entries)))
		if err != nil {
			return AuditPage{}, err
		}
		for _, e := range evs {
			scanned++
			if pastUntil(e, q.Until) {
				return AuditPage{Entries: page.Entries}, nil // nothing later matches, whatever the writers' clocks
			}
			if match(e) {
				page.Entries = append(page.Entries, s.auditEntry(e))
			}
			if page.Next = e.Sequence; len(page.Entries) == q.Limit {
				return page, nil
			}
		}
		if next == 0 {
			return AuditPage{Entries: page.Entries}, nil
		}
		from = next
	}
	return page, nil
}

// readWindow asks for a few more events than are missing: filters skip some.
func readWindow(missing int) int { return min(max(missing*2, 64), 512) }

func (s *Service) auditBackward(ctx context.Context, q AuditQuery, match func(events.Envelope) bool) (AuditPage, error) {
	end, err := s.backwardStart(ctx, q)
	if err != nil {
		return AuditPage{}, err
	}
	var page AuditPage
	for scanned := 0; end > 0 && scanned < auditScanBudget; {
		window := uint64(readWindow(q.Limit - len(page.Entries)))
		from := max(end, window) - window + 1
		evs, err := s.readRange(ctx, from, end)
		if err != nil {
			return AuditPage{}, err
		}
		for _, e := range slices.Backward(evs) {
			scanned++
			if !q.Since.IsZero() && e.Time.Before(q.Since.Add(-clockSkew)) {
				return AuditPage{Entries: page.Entries}, nil
			}
			if match(e) {
				page.Entries = append(page.Entries, s.auditEntry(e))
			}
			if len(page.Entries) == q.Limit {
				page.Next = e.Sequence
				return page, nil
			}
		}
		end = from - 1
		page.Next = from
	}
	if end == 0 {
		page.Next = 0
	}
	return page, nil
}

// backwardStart is the last sequence a newest-first page may return.
func (s *Service) backwardStart(ctx context.Context, q AuditQuery) (uint64, error) {
	end, err := s.log.LastSequence(ctx)
	if err != nil {
		return 0, err
	}
	if q.Cursor > 0 {
		end = min(end, q.Cursor-1)
	}
	if !q.Until.IsZero() {
		after, err := s.log.SequenceAt(ctx, q.Until.Add(clockSkew))
		if err != nil {
			return 0, err
		}
		end = min(end, after-1)
	}
	return end, nil
}

// readRange returns the events with sequences in [from, to].
func (s *Service) readRange(ctx context.Context, from, to uint64) ([]events.Envelope, error) {
	var out []events.Envelope
	for from <= to {
		evs, next, err := s.log.ReadLog(ctx, from, int(to-from+1))
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if e.Sequence <= to {
				out = append(out, e)
			}
		}
		if next == 0 || next > to {
			break
		}
		from = next
	}
	return out, nil
}

func (s *Service) auditEntry(e events.Envelope) AuditEntry {
	a := AuditEntry{Sequence: e.Sequence, Time: e.Time, Actor: e.Actor, Action: events.TypeToken(e.Type), Type: e.Type,
		Reason: e.Reason, CorrelationID: e.CorrelationID, CausationID: e.CausationID, Source: e.Source}
	if !events.Singleton(e.Subject) {
		a.WorkspaceID = e.Subject
		if ws, ok := s.proj.Workspace(e.Subject); ok {
			a.WorkspaceName = ws.Name
		}
	}
	switch {
	case strings.HasPrefix(e.Actor, "user:"):
		a.Origin = "user"
	case strings.HasPrefix(e.Actor, "system:"):
		a.Origin = "system"
	default:
		a.Origin = "service"
	}
	return a
}

// StateAt is a workspace as it was at a moment, folded from its events up
// to then with no side effect, and the log sequence it was folded to.
type StateAt struct {
	Workspace events.Workspace
	Sequence  uint64
}

// WorkspaceAt folds the workspace's events up to at. Its owner, admins and
// auditors may ask; a workspace that did not exist yet is not found.
func (s *Service) WorkspaceAt(ctx context.Context, c Caller, id string, at time.Time) (StateAt, error) {
	ws, ok := s.proj.Workspace(id)
	if ws2, byName := s.proj.WorkspaceByName(id); !ok && byName {
		ws, ok, id = ws2, true, ws2.ID
	}
	if !ok || (ws.Owner != c.Subject && !c.mayAudit()) {
		return StateAt{}, errNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.AppendTimeout)
	defer cancel()
	evs, err := s.log.Read(ctx, id)
	if err != nil {
		return StateAt{}, unavailable(fmt.Errorf("state of %s: %w", id, err))
	}
	var out StateAt
	for _, e := range evs {
		if e.Time.After(at) {
			continue // writers' clocks differ: a later event may carry an earlier time
		}
		next, err := events.Apply(out.Workspace, e)
		if err != nil {
			continue // the fold refused it then too
		}
		out.Workspace, out.Sequence = next, e.Sequence
	}
	if out.Sequence == 0 {
		return StateAt{}, &Error{Kind: KindNotFound, Code: CodeNotFound, Message: fmt.Sprintf("workspace %s did not exist at %s", id, at.UTC().Format(time.RFC3339))}
	}
	return out, nil
}

// Export writes the log's events between since and until (zero: open) as
// a hash-chained NDJSON export (pkg/events/auditchain), for admins and
// auditors. It streams: the log is read a page at a time.
func (s *Service) Export(ctx context.Context, c Caller, since, until time.Time, w io.Writer) error {
	if !c.mayAudit() {
		return forbidden("only admins and auditors export the audit log")
	}
	from, err := s.startAt(ctx, since)
	if err != nil {
		return unavailable(err)
	}
	chain, err := auditchain.NewWriter(w, exportHeader(from, since, until))
	if err != nil {
		return err
	}
	for from != 0 {
		evs, next, err := s.log.ReadLog(ctx, from, 512)
		if err != nil {
			return unavailable(err) // the body is cut short: no trailer, so it cannot verify
		}
		for _, e := range evs {
			if pastUntil(e, until) {
				return chain.Close()
			}
			if inRange(e, since, until) {
				if err := s.exportLine(chain, e); err != nil {
					return err
				}
			}
		}
		from = next
	}
	return chain.Close()
}

// startAt is the first sequence a read from since must look at (writers'
// clocks may be behind the log's).
func (s *Service) startAt(ctx context.Context, since time.Time) (uint64, error) {
	if since.IsZero() {
		return 1, nil
	}
	return s.log.SequenceAt(ctx, since.Add(-clockSkew))
}

// pastUntil: nothing at or after e can be in a range that ends at until.
func pastUntil(e events.Envelope, until time.Time) bool {
	return !until.IsZero() && e.Time.After(until.Add(clockSkew))
}

// inRange: e's own time is within [since, until] (zero: open).
func inRange(e events.Envelope, since, until time.Time) bool {
	return (since.IsZero() || !e.Time.Before(since)) && (until.IsZero() || !e.Time.After(until))
}

func exportHeader(from uint64, since, until time.Time) auditchain.Header {
	h := auditchain.Header{FirstSequence: from}
	if !since.IsZero() {
		h.Since = since.UTC().Format(time.RFC3339Nano)
	}
	if !until.IsZero() {
		h.Until = until.UTC().Format(time.RFC3339Nano)
	}
	return h
}

func (s *Service) exportLine(chain *auditchain.Writer, e events.Envelope) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return chain.Write(e.Sequence, raw)
}
