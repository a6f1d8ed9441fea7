package httpapi

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOpenAPIMatchesRoutes keeps the document honest: every route the
// server registers is documented, and every documented operation exists.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()), "the OpenAPI document itself must be valid")

	e := edge(t, nil)

	param := regexp.MustCompile(`:([a-z_]+)`)
	served := map[string]bool{}
	for _, r := range e.Routes() {
		if r.Method == "echo_route_not_found" || strings.HasSuffix(r.Path, "*") {
			continue
		}
		if r.Path == "/" || strings.HasPrefix(r.Path, "/ui/") {
			continue // the dashboard's pages (docs/dashboard.md), not the JSON API
		}
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	assert.Equal(t, keys(documented), keys(served))
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIDocumentsRateLimits: every rate-limited route documents 429,
// and the routes left out of the limit (forwardAuth, operations) do not.
func TestOpenAPIDocumentsRateLimits(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	require.NoError(t, err)
	for path, item := range doc.Paths.Map() {
		limited := strings.HasPrefix(path, "/api/v1/") && path != "/api/v1/auth/forward"
		for method, op := range item.Operations() {
			assert.Equal(t, limited, op.Responses.Value("429") != nil, "%s %s documents 429", method, path)
		}
	}
}
