package httpapi

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/berthdev/berth/pkg/platform/service"
	"github.com/berthdev/berth/services/api/internal/auth"
)

// testSecret signs the tokens of edge tests.
var testSecret = []byte(strings.Repeat("k", 32))

// edge is the HTTP edge with no use cases behind it (Backend unset), a
// token verifier and dev tokens on; adjust changes the options first.
func edge(t *testing.T, adjust func(*Options)) *echo.Echo {
	t.Helper()
	v, err := auth.NewHS256(testSecret, auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Backend: &Backend{}, Verifier: v, DevIssuer: auth.NewIssuer(testSecret, auth.Options{}),
		URLFor: func(n string) string { return n }, Health: service.NewHealth(nil), Metrics: http.NotFoundHandler(),
		Log: slog.New(slog.DiscardHandler), TracerProvider: tracenoop.NewTracerProvider(), Meter: noop.NewMeterProvider().Meter(""),
	}
	if adjust != nil {
		adjust(&o)
	}
	return New(o)
}
