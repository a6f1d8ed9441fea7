package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/enginestatus"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
	"github.com/berthdev/berth/services/api/internal/auth"
	"github.com/berthdev/berth/services/api/internal/httpapi"
)

const testSecret = "test-secret-test-secret-test-secret-0123"

// env is one test's world: a real in-process NATS with JetStream on a temp
// dir, a projects root, and the API run by its own composition root.
type env struct {
	t        *testing.T
	nats     *server.Server
	natsURL  string
	dataDir  string
	projects string
	issuer   *auth.Issuer
	router   routers.Router
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Server(t)
	root := t.TempDir()
	projects := filepath.Join(root, "projects")
	for _, d := range []string{"course-101", "course-102/lab1"} {
		require.NoError(t, os.MkdirAll(filepath.Join(projects, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(projects, "notes.txt"), []byte("x"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "outside"), 0o755))
	require.NoError(t, os.Symlink(filepath.Join(root, "outside"), filepath.Join(projects, "escape")))

	doc, err := openapi3.NewLoader().LoadFromData(httpapi.OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	doc.Servers = nil // match requests on any host:port
	router, err := legacy.NewRouter(doc)
	require.NoError(t, err)
	return &env{
		t: t, nats: srv, natsURL: srv.ClientURL(), dataDir: filepath.Join(root, "data"), projects: projects,
		issuer: auth.NewIssuer([]byte(testSecret), auth.Options{}), router: router,
	}
}

// api is one running API process (in-process, through run()).
type api struct {
	e    *env
	base string
	stop func()
}

func (e *env) startAPI(extra ...string) *api {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args := append([]string{
		"--http-addr", "127.0.0.1:0", "--nats-url", e.natsURL, "--data-dir", e.dataDir,
		"--projects-root", e.projects, "--jwt-secret", testSecret, "--log-level", "warn",
		"--public-url", "http://" + publicHost,
		// Rate limits off: a test's request count must not depend on how fast
		// the machine runs it. limits_test.go turns them on (later flags win).
		"--api-rate", "0",
	}, extra...)
	go func() { done <- run(ctx, args, io.Discard, func(addr string) { ready <- addr }) }()
	select {
	case addr := <-ready:
		a := &api{e: e, base: "http://" + addr}
		var once bool
		a.stop = func() {
			if once {
				return
			}
			once = true
			cancel()
			select {
			case err := <-done:
				require.NoError(e.t, err)
			case <-time.After(15 * time.Second):
				e.t.Fatal("api did not shut down")
			}
		}
		e.t.Cleanup(a.stop)
		return a
	case err := <-done:
		cancel()
		e.t.Fatalf("api exited: %v", err)
	case <-time.After(15 * time.Second):
		cancel()
		e.t.Fatal("api not ready")
	}
	return nil
}

// engineBoard opens the provisioners' status bucket, to report as one.
func (e *env) engineBoard() *enginestatus.Board {
	e.t.Helper()
	l, err := eventlog.Open(context.Background(), natstest.Conn(e.t, e.nats), eventlog.Options{})
	require.NoError(e.t, err)
	b, err := enginestatus.Open(context.Background(), l.JetStream())
	require.NoError(e.t, err)
	return b
}

func (e *env) token(sub string, roles ...string) string {
	tok, err := e.issuer.Issue(sub, roles, time.Now(), time.Hour)
	require.NoError(e.t, err)
	return tok
}

// resp is a decoded response.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	return m
}

func (r resp) str(t *testing.T, key string) string {
	t.Helper()
	v, _ := r.json(t)[key].(string)
	return v
}

// fieldCodes lists the codes of a validation problem's errors.
func (r resp) fieldCodes(t *testing.T) []string {
	var out []string
	for _, f := range r.json(t)["errors"].([]any) {
		out = append(out, f.(map[string]any)["code"].(string))
	}
	return out
}

// do sends a request and checks the response against the OpenAPI document:
// every status, header and body the API returns must be documented.
func (a *api) do(method, path, token string, body any, headers ...string) resp {
	t := a.e.t
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	require.NoError(t, err)
	req.Host = publicHost
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		setHeader(req, headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	a.checkDocumented(req, res, out)
	return resp{Status: res.StatusCode, Header: res.Header, Body: out}
}

func (a *api) checkDocumented(req *http.Request, res *http.Response, body []byte) {
	t := a.e.t
	t.Helper()
	// Match on the escaped path, as the server does: an escaped '/' inside
	// an image reference is one path segment.
	lookup := req.Clone(context.Background())
	lookup.URL.Path = req.URL.EscapedPath()
	route, params, err := a.e.router.FindRoute(lookup)
	if err != nil {
		if res.StatusCode == http.StatusNotFound || res.StatusCode == http.StatusMethodNotAllowed {
			return // an undocumented route must not exist: that is what it said
		}
		t.Fatalf("%s %s answered %d but is not in the OpenAPI document: %v", req.Method, req.URL.Path, res.StatusCode, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: res.StatusCode,
		Header: res.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s -> %d does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, res.StatusCode, err, body)
	}
}

// expectProblem asserts a problem+json response with status and code.
func expectProblem(t *testing.T, r resp, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, "application/problem+json", r.Header.Get("Content-Type"))
	m := r.json(t)
	require.Equal(t, code, m["code"], "body: %s", r.Body)
	require.EqualValues(t, status, m["status"])
	require.NotEmpty(t, m["title"])
}

func (a *api) addImage(token, ref string) {
	a.e.t.Helper()
	r := a.do("POST", "/api/v1/images", token, map[string]any{"ref": ref, "description": "test image"})
	require.Equal(a.e.t, http.StatusCreated, r.Status, "add image: %s", r.Body)
}

func wsPath(id string, suffix ...string) string {
	return fmt.Sprintf("/api/v1/workspaces/%s%s", id, strings.Join(suffix, ""))
}

// publicHost is the host the harness's API is configured to be reached at
// (--public-url): every request names it, as a browser behind Traefik
// would, unless a test sends another Host.
const publicHost = "berth.test:8000"

// setHeader sets a request header; "Host" sets the request's host.
func setHeader(req *http.Request, k, v string) {
	if strings.EqualFold(k, "Host") {
		req.Host = v
		return
	}
	req.Header.Set(k, v)
}
