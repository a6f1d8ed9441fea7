package service

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"sync/atomic"
	"time"
)

// Check reports whether one dependency is usable; nil means ready.
type Check func(ctx context.Context) error

// Health serves /healthz (the process is alive) and /readyz (every check
// passes), each as a small JSON document.
type Health struct {
	checks map[string]Check
}

// NewHealth returns a Health with the named readiness checks.
func NewHealth(checks map[string]Check) *Health {
	return &Health{checks: checks}
}

// Live handles /healthz.
func (h *Health) Live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready handles /readyz: 200 when every check passes, 503 with the failing
// checks' errors otherwise.
func (h *Health) Ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, failures := http.StatusOK, map[string]string{}
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := h.checks[n](ctx); err != nil {
			status = http.StatusServiceUnavailable
			failures[n] = err.Error()
		}
	}
	body := map[string]any{"status": "ready"}
	if status != http.StatusOK {
		body = map[string]any{"status": "not ready", "failing": failures}
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Gate is a readiness check that fails until Open is called (for example
// until the log has been replayed).
type Gate struct {
	what string
	open atomic.Bool
}

// NewGate returns a closed gate; what says what is not ready yet.
func NewGate(what string) *Gate { return &Gate{what: what} }

// Open marks the gate ready.
func (g *Gate) Open() { g.open.Store(true) }

// Check is the readiness check.
func (g *Gate) Check(context.Context) error {
	if !g.open.Load() {
		return errors.New(g.what)
	}
	return nil
}

// OpsHandler serves /healthz, /readyz and /metrics: the whole HTTP surface
// of a service without an API of its own.
func OpsHandler(h *Health, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.Live)
	mux.HandleFunc("GET /readyz", h.Ready)
	mux.Handle("GET /metrics", metrics)
	return mux
}
