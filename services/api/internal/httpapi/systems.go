package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/services/api/internal/app"
)

// systemBody is a registered system; Password only in the answer to its
// registration.
type systemBody struct {
	Name       string   `json:"name"`
	Types      []string `json:"types"`
	Owners     []string `json:"owners"`
	ReadEvents bool     `json:"read_events"`
	NATSUser   string   `json:"nats_user"`
	Password   string   `json:"password,omitempty"`
	Subject    string   `json:"subject"`
	Inbox      string   `json:"inbox_prefix"`
}

func systemOf(r app.RegisteredSystem) systemBody {
	return systemBody{Name: r.Name, Types: r.Types, Owners: r.Owners, ReadEvents: r.ReadEvents, NATSUser: r.User, Password: r.Password, Subject: r.Subject, Inbox: r.InboxPrefix}
}

func (h *handlers) registerSystem(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	var in app.SystemInput
	if err := decode(c, &in); err != nil {
		return err
	}
	r, err := w.RegisterSystem(c.Request().Context(), caller(c), in)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store") // it holds a password
	return c.JSON(http.StatusCreated, systemOf(r))
}

func (h *handlers) listSystems(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	rs, err := w.Systems(caller(c))
	if err != nil {
		return err
	}
	out := make([]systemBody, 0, len(rs))
	for _, r := range rs {
		out = append(out, systemOf(r))
	}
	return c.JSON(http.StatusOK, map[string]any{"systems": out})
}

func (h *handlers) revokeSystem(c echo.Context) error {
	w, err := h.o.Backend.get()
	if err != nil {
		return err
	}
	if err := w.RevokeSystem(c.Request().Context(), caller(c), c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
