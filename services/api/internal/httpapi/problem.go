package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/services/api/internal/app"
)

// Problem is an RFC 9457 problem document. Code is stable: clients branch
// on it, never on Detail.
type Problem struct {
	Type     string           `json:"type"`
	Title    string           `json:"title"`
	Status   int              `json:"status"`
	Detail   string           `json:"detail,omitempty"`
	Instance string           `json:"instance,omitempty"`
	Code     string           `json:"code"`
	Errors   []app.FieldError `json:"errors,omitempty"`
}

// Stable codes produced at the HTTP edge (app defines the domain ones).
const (
	codeUnauthenticated  = "unauthenticated"
	codeTokenExpired     = "token_expired"
	codeInvalidToken     = "invalid_token"
	codeSessionEnded     = "session_ended"
	codeCrossOrigin      = "cross_origin_refused"
	codeWrongHost        = "wrong_host"
	codeSessionAmbiguous = "session_ambiguous"
	codeCrossSite        = "cross_site_refused"
	codeTicketInvalid    = "ticket_invalid"
	codeTooManyStreams   = "too_many_streams"
	codeMalformedJSON    = "malformed_json"
	codeInvalidQuery     = "invalid_query"
	codeInvalidPath      = "invalid_path"
	codeRateLimited      = "rate_limited"
	codeDevTokensLocal   = "dev_tokens_local_only"
	codeBodyTooLarge     = "body_too_large"
	codeRouteNotFound    = "route_not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeUnsupportedMedia = "unsupported_media_type"
	codeInternal         = "internal_error"
	codeSchemaNotFound   = "schema_not_found"
)

// unavailableTitle is the message dashboards already show for this case.
const unavailableTitle = "Workspace feature not available"

func problem(status int, code, detail string) *Problem {
	title := http.StatusText(status)
	if status == http.StatusServiceUnavailable {
		title = unavailableTitle
	}
	return &Problem{Type: "urn:berth:problem:" + code, Title: title, Status: status, Detail: detail, Code: code}
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

var kindStatus = map[app.Kind]int{
	app.KindInvalid:     http.StatusUnprocessableEntity,
	app.KindForbidden:   http.StatusForbidden,
	app.KindNotFound:    http.StatusNotFound,
	app.KindConflict:    http.StatusConflict,
	app.KindUnavailable: http.StatusServiceUnavailable,
}

// errorHandler renders every error as problem JSON and never leaks
// internals: unexpected errors are logged and reported as internal_error.
func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := toProblem(err)
		if p.Status >= 500 && p.Status != http.StatusServiceUnavailable {
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
		} else if p.Status == http.StatusServiceUnavailable {
			log.Warn("dependency unavailable", "path", c.Request().URL.Path, "err", err)
		}
		p.Instance = c.Request().URL.Path
		if p.Status == http.StatusUnauthorized {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
		}
		c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		_ = c.JSON(p.Status, p)
	}
}

func toProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		cp := *p
		return &cp
	}
	if ae, ok := app.AsError(err); ok {
		status := kindStatus[ae.Kind]
		detail := ae.Message
		switch ae.Code {
		case app.CodeUnavailable:
			detail = "The event log (NATS JetStream) is not reachable from the API. Please contact your administrator."
		case app.CodeEngineUnavailable:
			detail = "Docker is not accessible from the provisioner. Please contact your administrator."
		}
		out := problem(status, ae.Code, detail)
		out.Errors = ae.Fields
		return out
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return problem(he.Code, codeRouteNotFound, "no such route")
		case http.StatusMethodNotAllowed:
			return problem(he.Code, codeMethodNotAllowed, "method not allowed on this route")
		case http.StatusRequestEntityTooLarge:
			return problem(he.Code, codeBodyTooLarge, "request body is too large")
		case http.StatusUnsupportedMediaType:
			return problem(he.Code, codeUnsupportedMedia, "send application/json")
		}
		if he.Code < 500 {
			return problem(he.Code, codeMalformedJSON, http.StatusText(he.Code))
		}
	}
	return problem(http.StatusInternalServerError, codeInternal, "internal error; see the API logs")
}
