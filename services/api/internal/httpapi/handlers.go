package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/services/api/internal/app"
	"github.com/berthdev/berth/services/api/internal/auth"
)

type handlers struct {
	o       Options
	streams *streamSlots
}

// view is the body of a workspace, with the URL it is (or will be)
// reachable at.
func (h *handlers) view(ws events.Workspace) workspaceBody {
	return workspaceOf(ws, h.o.URLFor(ws.Name))
}

// decode reads a JSON object body strictly: the media type must be
// application/json (a cross-site form cannot send it), the body one JSON
// object (not null, an array or a string), unknown fields and trailing
// data are errors, so a typo in a field name is reported instead of
// ignored.
func decode(c echo.Context, dst any) error {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || mt != echo.MIMEApplicationJSON {
		return problem(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "send Content-Type: application/json")
	}
	var raw json.RawMessage
	dec := json.NewDecoder(c.Request().Body)
	err = dec.Decode(&raw)
	if errors.Is(err, io.EOF) {
		return problem(http.StatusBadRequest, codeMalformedJSON, "request body is empty; send a JSON object")
	}
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusRequestEntityTooLarge {
			return problem(http.StatusRequestEntityTooLarge, codeBodyTooLarge, "request body is too large")
		}
		return problem(http.StatusBadRequest, codeMalformedJSON, "request body is not valid JSON for this route: "+err.Error())
	}
	if raw[0] != '{' {
		return problem(http.StatusBadRequest, codeMalformedJSON, "request body must be a JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		return problem(http.StatusBadRequest, codeMalformedJSON, "request body is not valid JSON for this route: "+err.Error())
	}
	return nil
}

// decodeOptional is decode for routes whose body may be absent.
func decodeOptional(c echo.Context, dst any) error {
	if c.Request().ContentLength == 0 {
		return nil
	}
	return decode(c, dst)
}

func (h *handlers) devToken(c echo.Context) error {
	// The TCP peer, never a forwarded header: tokens for anyone who can
	// reach the port would be admin tokens for the network.
	if !h.o.DevClients.Permits(c.Request().RemoteAddr) {
		return problem(http.StatusForbidden, codeDevTokensLocal, "development tokens are issued only to clients on this machine (BERTH_DEV_TOKEN_CLIENTS)")
	}
	var in struct {
		Sub        string   `json:"sub"`
		Roles      []string `json:"roles"`
		TTLSeconds int      `json:"ttl_seconds"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	in.Sub = strings.TrimSpace(in.Sub)
	var fields []app.FieldError
	if in.Sub == "" || len(in.Sub) > 128 {
		fields = append(fields, app.FieldError{Field: "sub", Code: "invalid_subject", Message: "sub must be 1-128 characters"})
	}
	if in.TTLSeconds == 0 {
		in.TTLSeconds = 3600
	}
	if in.TTLSeconds < 1 || in.TTLSeconds > 7*24*3600 {
		fields = append(fields, app.FieldError{Field: "ttl_seconds", Code: "invalid_ttl", Message: "ttl_seconds must be between 1 and 604800"})
	}
	if len(in.Roles) == 0 {
		in.Roles = []string{"user"}
	}
	if len(fields) > 0 {
		return problem422(fields)
	}
	now := h.o.Now()
	ttl := time.Duration(in.TTLSeconds) * time.Second
	tok, err := h.o.DevIssuer.Issue(in.Sub, in.Roles, now, ttl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"token": tok, "expires_at": now.Add(ttl).UTC()})
}

func problem422(fields []app.FieldError) error {
	p := problem(http.StatusUnprocessableEntity, app.CodeValidation, fields[0].Message)
	p.Errors = fields
	return p
}

func (h *handlers) me(c echo.Context) error {
	p, _ := c.Get(principalKey).(auth.Principal)
	roles := p.Roles
	if roles == nil {
		roles = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"sub": p.Subject, "roles": roles, "admin": p.Admin})
}

func (h *handlers) listImages(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	imgs, def := w.Images()
	return c.JSON(http.StatusOK, map[string]any{"images": imgs, "default": def})
}

func (h *handlers) addImage(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	var in app.ImageInput
	if err := decode(c, &in); err != nil {
		return err
	}
	img, err := w.AddImage(c.Request().Context(), caller(c), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, img)
}

// pathImage is the image reference in the path: references contain '/'
// and ':', so clients escape them.
func pathImage(c echo.Context) (string, error) {
	ref, err := url.PathUnescape(c.Param("ref"))
	if err != nil {
		return "", problem(http.StatusBadRequest, codeInvalidPath, "the image reference is not correctly escaped")
	}
	return ref, nil
}

func (h *handlers) updateImage(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	ref, err := pathImage(c)
	if err != nil {
		return err
	}
	var in app.ImageUpdate
	if err := decode(c, &in); err != nil {
		return err
	}
	img, err := w.UpdateImage(c.Request().Context(), caller(c), ref, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, img)
}

func (h *handlers) removeImage(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	ref, err := pathImage(c)
	if err != nil {
		return err
	}
	if err := w.RemoveImage(c.Request().Context(), caller(c), ref); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) listWorkspaces(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	f := app.ListFilter{Owner: c.QueryParam("owner")}
	if v := c.QueryParam("include_deleted"); v != "" {
		if f.IncludeDeleted, err = strconv.ParseBool(v); err != nil {
			return problem(http.StatusBadRequest, codeInvalidQuery, "include_deleted must be true or false")
		}
	}
	if v := c.QueryParam("volume_kept"); v != "" {
		if f.VolumeKept, err = strconv.ParseBool(v); err != nil {
			return problem(http.StatusBadRequest, codeInvalidQuery, "volume_kept must be true or false")
		}
	}
	list := w.List(c.Request().Context(), caller(c), f)
	out := make([]workspaceBody, 0, len(list))
	for _, ws := range list {
		out = append(out, h.view(ws))
	}
	return c.JSON(http.StatusOK, map[string]any{"workspaces": out})
}

func (h *handlers) createWorkspace(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	var in app.CreateInput
	if err := decode(c, &in); err != nil {
		return err
	}
	ws, err := w.Create(c.Request().Context(), caller(c), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/workspaces/"+ws.ID)
	return c.JSON(http.StatusCreated, h.view(ws))
}

func (h *handlers) launch(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	var in app.LaunchInput
	if err := decodeOptional(c, &in); err != nil {
		return err
	}
	ws, created, err := w.Launch(c.Request().Context(), caller(c), in)
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	switch {
	case created:
		status = http.StatusCreated
		c.Response().Header().Set(echo.HeaderLocation, "/api/v1/workspaces/"+ws.ID)
	case ws.Status == events.StatusRunning:
		status = http.StatusOK
	}
	return c.JSON(status, h.view(ws))
}

// pathWorkspace is the workspace named in the path, if the caller may see it.
func (h *handlers) pathWorkspace(c echo.Context) (events.Workspace, error) {
	w, err := h.o.Backend.get()
	if err != nil {
		return events.Workspace{}, err
	}
	return w.Get(c.Request().Context(), caller(c), c.Param("id"))
}

func (h *handlers) getWorkspace(c echo.Context) error {
	ws, err := h.pathWorkspace(c)
	if err != nil {
		return err
	}
	h.touch(c, ws)
	return c.JSON(http.StatusOK, h.view(ws))
}

func (h *handlers) updateWorkspace(c echo.Context) error {
	return change(h, c, Workspaces.Update)
}

// change decodes a body of type In and applies it to the workspace in the
// path; the answer is the workspace as it now is.
func change[In any](h *handlers, c echo.Context, apply func(Workspaces, context.Context, app.Caller, string, In) (events.Workspace, error)) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	var in In
	if err := decode(c, &in); err != nil {
		return err
	}
	ws, err := apply(w, c.Request().Context(), caller(c), c.Param("id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.view(ws))
}

// lifecycle runs a start/stop/delete command and answers 202: the request
// is in the log; the provisioner carries it out.
func (h *handlers) lifecycle(c echo.Context, run func(w Workspaces, c echo.Context) (events.Workspace, error)) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	ws, err := run(w, c)
	if err != nil {
		return err
	}
	h.touch(c, ws)
	return c.JSON(http.StatusAccepted, h.view(ws))
}

// touch records the owner's API calls as activity on their workspace (an
// admin looking at it is not the user using it).
func (h *handlers) touch(c echo.Context, ws events.Workspace) {
	if h.o.Activity != nil && ws.Owner == caller(c).Subject && ws.Status == events.StatusRunning {
		h.o.Activity.Touch(ws.ID, h.o.Now())
	}
}

func (h *handlers) setLifecycle(c echo.Context) error {
	return change(h, c, Workspaces.Lifecycle)
}

func (h *handlers) restoreWorkspace(c echo.Context) error {
	return h.lifecycle(c, func(w Workspaces, c echo.Context) (events.Workspace, error) {
		return w.Restore(c.Request().Context(), caller(c), c.Param("id"))
	})
}

// heartbeat is the explicit "still in use" signal (an IDE extension, a
// dashboard tab the user interacts with). It writes no event: activity lives
// in the activity bucket, not the audit log.
func (h *handlers) heartbeat(c echo.Context) error {
	ws, err := h.pathWorkspace(c)
	if err != nil {
		return err
	}
	if ws.Status != events.StatusRunning {
		return problem(http.StatusConflict, app.CodeIllegalTransition, fmt.Sprintf("workspace %s is %s; only a running workspace takes heartbeats", ws.Name, ws.Status))
	}
	if h.o.Activity != nil {
		h.o.Activity.Touch(ws.ID, h.o.Now())
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) startWorkspace(c echo.Context) error {
	return h.lifecycle(c, func(w Workspaces, c echo.Context) (events.Workspace, error) {
		return w.Start(c.Request().Context(), caller(c), c.Param("id"))
	})
}

func (h *handlers) stopWorkspace(c echo.Context) error {
	return h.lifecycle(c, func(w Workspaces, c echo.Context) (events.Workspace, error) {
		return w.Stop(c.Request().Context(), caller(c), c.Param("id"))
	})
}

func (h *handlers) deleteWorkspace(c echo.Context) error {
	return h.lifecycle(c, func(w Workspaces, c echo.Context) (events.Workspace, error) {
		mode := app.DeleteMode(c.QueryParam("data"))
		if v := c.QueryParam("purge"); v != "" { // before data=: purge=true
			purge, err := strconv.ParseBool(v)
			if err != nil || (mode != "" && purge != (mode == app.DeletePurge)) {
				return events.Workspace{}, problem(http.StatusBadRequest, codeInvalidQuery, "purge must be true or false and agree with data")
			}
			if purge {
				mode = app.DeletePurge
			}
		}
		switch mode {
		case "":
			mode = app.DeleteKeep
		case app.DeleteKeep, app.DeleteArchive, app.DeletePurge:
		default:
			return events.Workspace{}, problem(http.StatusBadRequest, codeInvalidQuery, "data must be keep (the default), archive or purge")
		}
		return w.Delete(c.Request().Context(), caller(c), c.Param("id"), mode)
	})
}

// historyEntry is one event with its position in the log.
type historyEntry struct {
	Sequence uint64 `json:"sequence"`
	events.Envelope
}

func (h *handlers) workspaceEvents(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	after, limit, err := pageQuery(c)
	if err != nil {
		return err
	}
	page, err := w.History(c.Request().Context(), caller(c), c.Param("id"), after, limit)
	if err != nil {
		return err
	}
	out := make([]historyEntry, 0, len(page.Events))
	for _, e := range page.Events {
		out = append(out, historyEntry{Sequence: e.Sequence, Envelope: e})
	}
	body := map[string]any{"events": out}
	if page.Next > 0 {
		body["next"] = page.Next
	}
	return c.JSON(http.StatusOK, body)
}

// workspaceLogs serves the container's output as plain text (?tail=
// lines, default 200; ?timestamps=true prefixes the engine's time).
func (h *handlers) workspaceLogs(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	tail := 200
	if v := c.QueryParam("tail"); v != "" {
		if tail, err = strconv.Atoi(v); err != nil {
			return problem(http.StatusBadRequest, codeInvalidQuery, "tail must be a whole number of lines, 1 to 5000")
		}
	}
	ts := c.QueryParam("timestamps")
	if ts != "" && ts != "true" && ts != "false" {
		return problem(http.StatusBadRequest, codeInvalidQuery, "timestamps must be true or false")
	}
	logs, err := w.Logs(c.Request().Context(), caller(c), c.Param("id"), tail, ts == "true")
	if err != nil {
		return err
	}
	if logs.Truncated {
		c.Response().Header().Set("Berth-Logs-Truncated", "true")
	}
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	return c.String(http.StatusOK, logs.Text)
}

// pageQuery reads the history paging parameters: after (a log sequence,
// exclusive; default 0) and limit (1 to app.MaxHistoryLimit; default
// app.DefaultHistoryLimit).
func pageQuery(c echo.Context) (after uint64, limit int, err error) {
	limit = app.DefaultHistoryLimit
	if v := c.QueryParam("after"); v != "" {
		// 63 bits: the OpenAPI integer is an int64, and after+1 cannot wrap.
		if after, err = strconv.ParseUint(v, 10, 63); err != nil {
			return 0, 0, problem(http.StatusBadRequest, codeInvalidQuery, "after must be a log sequence (an integer >= 0)")
		}
	}
	if v := c.QueryParam("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > app.MaxHistoryLimit {
			return 0, 0, problem(http.StatusBadRequest, codeInvalidQuery, fmt.Sprintf("limit must be an integer from 1 to %d", app.MaxHistoryLimit))
		}
	}
	return after, limit, nil
}

// subjectParam is the path's user subject (path-escaped by clients).
func subjectParam(c echo.Context) (string, error) {
	subject, err := url.PathUnescape(c.Param("subject"))
	if err != nil || subject == "" {
		return "", problem(http.StatusBadRequest, codeInvalidPath, "the subject is not correctly escaped")
	}
	return subject, nil
}

func (h *handlers) getQuota(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	subject, err := subjectParam(c)
	if err != nil {
		return err
	}
	q, err := w.Quota(caller(c), subject)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, q)
}

func (h *handlers) setQuota(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	subject, err := subjectParam(c)
	if err != nil {
		return err
	}
	var in app.QuotaInput
	if err := decode(c, &in); err != nil {
		return err
	}
	q, err := w.SetQuota(c.Request().Context(), caller(c), subject, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, q)
}

func (h *handlers) deadLetters(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	after, limit, err := pageQuery(c)
	if err != nil {
		return err
	}
	page, err := w.DeadLetters(c.Request().Context(), caller(c), after, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deadLetterPageOf(page))
}

// seqParam is the path's dead-letter sequence: an integer from 1 (63
// bits: the OpenAPI integer is an int64).
func seqParam(c echo.Context) (uint64, error) {
	seq, err := strconv.ParseUint(c.Param("seq"), 10, 63)
	if err != nil || seq == 0 {
		return 0, problem(http.StatusBadRequest, codeInvalidPath, "the dead-letter sequence must be an integer >= 1")
	}
	return seq, nil
}

func (h *handlers) deadLetter(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	seq, err := seqParam(c)
	if err != nil {
		return err
	}
	d, err := w.DeadLetter(c.Request().Context(), caller(c), seq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deadLetterOf(d))
}

// retryDeadLetter answers 202: the message is handed back to its
// consumer, which handles it (or dead-letters it again) on its own time.
func (h *handlers) retryDeadLetter(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	seq, err := seqParam(c)
	if err != nil {
		return err
	}
	r, err := w.RetryDeadLetter(c.Request().Context(), caller(c), seq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, retryBody{Retried: r.Sequence, Consumer: r.Consumer, RedriveSequence: r.RedriveSequence})
}
