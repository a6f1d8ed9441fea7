package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/pkg/events/intake"

	"github.com/berthdev/berth/services/api/internal/app"
)

// intakeSchema serves the JSON Schema of an intake command type.
func intakeSchema(c echo.Context) error {
	raw, ok := intake.Schema(c.Param("type"))
	if !ok {
		return problem(http.StatusNotFound, codeSchemaNotFound, fmt.Sprintf("no intake command type %q; the types are %s", c.Param("type"), strings.Join(intake.Types, ", ")))
	}
	return c.Blob(http.StatusOK, "application/schema+json", raw)
}

// auditEntryBody is one entry of GET /api/v1/audit.
type auditEntryBody struct {
	Sequence      uint64    `json:"sequence"`
	Time          time.Time `json:"time"`
	Actor         string    `json:"actor"`
	Action        string    `json:"action"`
	Type          string    `json:"type"`
	Workspace     *wsRef    `json:"workspace,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	Source        string    `json:"source"`
	Origin        string    `json:"origin"`
}

type wsRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

func auditEntryOf(a app.AuditEntry) auditEntryBody {
	b := auditEntryBody{Sequence: a.Sequence, Time: a.Time, Actor: a.Actor, Action: a.Action, Type: string(a.Type),
		Reason: a.Reason, CorrelationID: a.CorrelationID, CausationID: a.CausationID, Source: a.Source, Origin: a.Origin}
	if a.WorkspaceID != "" {
		b.Workspace = &wsRef{ID: a.WorkspaceID, Name: a.WorkspaceName}
	}
	return b
}

func (h *handlers) audit(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	q, err := auditQuery(c)
	if err != nil {
		return err
	}
	page, err := w.Audit(c.Request().Context(), caller(c), q)
	if err != nil {
		return err
	}
	out := make([]auditEntryBody, 0, len(page.Entries))
	for _, e := range page.Entries {
		out = append(out, auditEntryOf(e))
	}
	body := map[string]any{"entries": out}
	if page.Next > 0 {
		body["next"] = page.Next
	}
	return c.JSON(http.StatusOK, body)
}

// auditQuery reads the audit filters: actor, type, workspace, since and
// until (RFC 3339), order (newest, the default, or oldest), cursor (a
// page's next) and limit.
func auditQuery(c echo.Context) (app.AuditQuery, error) {
	q := app.AuditQuery{Actor: c.QueryParam("actor"), Type: c.QueryParam("type"), Workspace: c.QueryParam("workspace"), Newest: true}
	var err error
	if q.Since, q.Until, err = timeRange(c); err != nil {
		return q, err
	}
	switch c.QueryParam("order") {
	case "", "newest":
	case "oldest":
		q.Newest = false
	default:
		return q, problem(http.StatusBadRequest, codeInvalidQuery, "order must be newest (the default) or oldest")
	}
	if v := c.QueryParam("cursor"); v != "" {
		if q.Cursor, err = strconv.ParseUint(v, 10, 63); err != nil || q.Cursor == 0 {
			return q, problem(http.StatusBadRequest, codeInvalidQuery, "cursor must be a page's next (an integer >= 1)")
		}
	}
	if v := c.QueryParam("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > app.MaxAuditLimit {
			return q, problem(http.StatusBadRequest, codeInvalidQuery, fmt.Sprintf("limit must be an integer from 1 to %d", app.MaxAuditLimit))
		}
	}
	return q, nil
}

// timeRange reads since and until (RFC 3339; either may be left out).
func timeRange(c echo.Context) (since, until time.Time, err error) {
	for name, dst := range map[string]*time.Time{"since": &since, "until": &until} {
		v := c.QueryParam(name)
		if v == "" {
			continue
		}
		if *dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return since, until, problem(http.StatusBadRequest, codeInvalidQuery, name+" must be an RFC 3339 time, e.g. 2026-11-24T14:02:00Z")
		}
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return since, until, problem(http.StatusBadRequest, codeInvalidQuery, "until is before since")
	}
	return since, until, nil
}

// auditExport streams the hash-chained NDJSON export. A failure after the
// first byte cuts the body short: without its trailer it never verifies.
func (h *handlers) auditExport(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	since, until, err := timeRange(c)
	if err != nil {
		return err
	}
	if !caller(c).Admin && !caller(c).Auditor {
		return problem(http.StatusForbidden, app.CodeForbidden, "only admins and auditors export the audit log")
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "application/x-ndjson")
	res.Header().Set(echo.HeaderContentDisposition, `attachment; filename="berth-audit.ndjson"`)
	res.WriteHeader(http.StatusOK)
	if err := w.Export(c.Request().Context(), caller(c), since, until, res); err != nil {
		h.o.Log.Warn("audit export cut short", "err", err)
	}
	return nil
}

// stateBody is GET /api/v1/workspaces/{id}/state.
type stateBody struct {
	At        time.Time     `json:"at"`
	Sequence  uint64        `json:"sequence"`
	Workspace workspaceBody `json:"workspace"`
}

func (h *handlers) workspaceState(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	at, err := time.Parse(time.RFC3339Nano, c.QueryParam("at"))
	if err != nil {
		return problem(http.StatusBadRequest, codeInvalidQuery, "at must be an RFC 3339 time, e.g. 2026-11-24T14:02:00Z")
	}
	st, err := w.WorkspaceAt(c.Request().Context(), caller(c), c.Param("id"), at)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, stateBody{At: at, Sequence: st.Sequence, Workspace: workspaceOf(st.Workspace, "")})
}
