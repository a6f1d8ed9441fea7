package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/services/api/internal/devclients"
)

// TestDevTokensForThisMachineOnly: with dev tokens on, only loopback peers
// (and the networks BERTH_DEV_TOKEN_CLIENTS names) get one; anyone else who
// reaches the port (another host, a container) gets 403, whatever
// X-Forwarded-For says. make up used to hand admin tokens to the network.
func TestDevTokensForThisMachineOnly(t *testing.T) {
	allowed, err := devclients.Parse("172.20.0.1", nil)
	require.NoError(t, err)
	e := edge(t, func(o *Options) { o.DevClients = allowed })
	mint := func(from, xff string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/dev/token", strings.NewReader(`{"sub":"root","roles":["admin"]}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = from
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	for _, from := range []string{"127.0.0.1:40000", "[::1]:40000", "172.20.0.1:40000"} {
		rec := mint(from, "")
		assert.Equal(t, http.StatusOK, rec.Code, "%s: %s", from, rec.Body)
		assert.Contains(t, rec.Body.String(), `"token"`)
	}
	for _, from := range []string{"192.168.1.20:40000", "172.20.0.7:40000", "10.0.0.2:40000"} {
		rec := mint(from, "127.0.0.1")
		assert.Equal(t, http.StatusForbidden, rec.Code, from)
		assert.Contains(t, rec.Body.String(), `"code":"dev_tokens_local_only"`, from)
	}
}
