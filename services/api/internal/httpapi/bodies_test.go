package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/services/api/internal/app"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// legacyWorkspaceBody is the body as it was before it had its own type:
// the fold's state, serialized as it is, plus the URL.
type legacyWorkspaceBody struct {
	events.Workspace
	URL string `json:"url"`
}

// TestWorkspaceBodyIsTheLegacyBody: for a workspace with every field set
// (and for a fresh one, where omitempty matters), the body's JSON is byte
// for byte what the API answered before: every field, name, nesting,
// order and omission. A field added to events.Workspace fails this test
// until it is added to workspaceBody (and openapi.yaml), or tagged
// json:"-" to keep it internal.
func TestWorkspaceBodyIsTheLegacyBody(t *testing.T) {
	var full events.Workspace
	fill(t, reflect.ValueOf(&full).Elem(), "ws")
	require.NotNil(t, full.Cause, "internal fields are set too, to see them stay out")
	fresh := events.Workspace{ID: "0b7e3c2a", Name: "alice", Projects: []string{}, Status: events.StatusCreated, Desired: events.DesiredStopped}
	for name, ws := range map[string]events.Workspace{"full": full, "fresh": fresh, "zero": {}} {
		t.Run(name, func(t *testing.T) {
			legacy, err := json.Marshal(legacyWorkspaceBody{Workspace: ws, URL: "http://alice.berth.test/"})
			require.NoError(t, err)
			body, err := json.Marshal(workspaceOf(ws, "http://alice.berth.test/"))
			require.NoError(t, err)
			assert.Equal(t, string(legacy), string(body))
			assert.NotContains(t, string(body), "ws.Cause", `json:"-" fields stay out`)
		})
	}
}

// TestWorkspaceBodyGolden pins the body of a typical workspace to
// testdata/workspace_body.json: a change to the contract is a visible
// diff (go test -run Golden -update rewrites it).
func TestWorkspaceBodyGolden(t *testing.T) {
	got, err := json.MarshalIndent(workspaceOf(goldenWorkspace(), "http://alice.berth.test/"), "", "  ")
	require.NoError(t, err)
	got = append(got, '\n')
	path := filepath.Join("testdata", "workspace_body.json")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

// TestWorkspaceBodyDocumented: the Workspace schema of openapi.yaml names
// exactly the body's fields, nested objects included, and every field it
// calls required is there even on a fresh workspace.
func TestWorkspaceBodyDocumented(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
	schema := doc.Components.Schemas["Workspace"].Value

	var full events.Workspace
	fill(t, reflect.ValueOf(&full).Elem(), "ws")
	assertSameFields(t, "Workspace", schema, toJSONObject(t, workspaceOf(full, "u")))

	fresh := toJSONObject(t, workspaceOf(events.Workspace{}, "u"))
	for _, name := range schema.Required {
		assert.Contains(t, fresh, name, "required field %s is always in the body", name)
	}
}

// TestDeadLetterBodyIsTheLegacyBody: a dead letter reads as it did when
// the API served eventlog's entry as it is.
func TestDeadLetterBodyIsTheLegacyBody(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	for _, data := range []struct {
		event json.RawMessage
		raw   string
	}{{event: json.RawMessage(`{"workspace_id":"x"}`)}, {raw: "not json"}} {
		legacy, err := json.Marshal(eventlog.DeadLetterEntry{Sequence: 7, Time: at, Consumer: "intake", Reason: "why",
			OriginalSubject: events.IntakeActivitySubject, Event: data.event, Raw: data.raw})
		require.NoError(t, err)
		body, err := json.Marshal(deadLetterOf(app.DeadLetter{Sequence: 7, Time: at, Consumer: "intake", Reason: "why",
			OriginalSubject: events.IntakeActivitySubject, Event: data.event, Raw: data.raw}))
		require.NoError(t, err)
		assert.Equal(t, string(legacy), string(body))
	}
	page, err := json.Marshal(deadLetterPageOf(app.DeadLetterPage{}))
	require.NoError(t, err)
	assert.Equal(t, `{"entries":[]}`, string(page), "an empty page has entries [] and no next")
}

// assertSameFields compares an object's keys with a schema's properties,
// and recurses into nested objects.
func assertSameFields(t *testing.T, where string, schema *openapi3.Schema, obj map[string]any) {
	t.Helper()
	assert.Equal(t, sortedKeys(schema.Properties), sortedKeys(obj), "fields of %s", where)
	for name, v := range obj {
		nested, ok := v.(map[string]any)
		prop := schema.Properties[name]
		if !ok || prop == nil {
			continue
		}
		assertSameFields(t, where+"."+name, prop.Value, nested)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func toJSONObject(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.NewDecoder(bytes.NewReader(b)).Decode(&m))
	return m
}

// fill sets every exported field under v to a value that is not zero and
// names where it is (strings hold their path), so no field can hide
// behind omitempty.
func fill(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 23, 9, 0, len(path), 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), path+"."+f.Name)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(t, v.Index(0), path+"[0]")
	case reflect.String:
		v.SetString(path)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(len(path)))
	case reflect.Uint64:
		v.SetUint(uint64(len(path)))
	default:
		t.Fatalf("fill: %s is a %s; teach fill that kind", path, v.Kind())
	}
}

// goldenWorkspace is a running workspace that has been through a failed
// start, an archive and an idle warning: most optional fields are set.
func goldenWorkspace() events.Workspace {
	at := time.Date(2026, 11, 23, 9, 30, 0, 0, time.UTC)
	return events.Workspace{
		ID: "0b7e3c2a-5d4f-4f7e-9a51-2f0c6f1d8e21", Name: "alice", Description: "alice's workspace",
		Image: "berth/workspace-demo:latest", Projects: []string{"course-101"}, Owner: "alice",
		Resources: events.Resources{MemoryBytes: 2 << 30, MilliCPUs: 500, Pids: 512},
		Status:    events.StatusRunning, Desired: events.DesiredRunning, Reason: "start requested by alice",
		Failure:  &events.Failed{Code: "image_missing", Message: "image is not on this host", Retryable: true},
		Endpoint: &events.Endpoint{ContainerID: "3f1c9e", Host: "berth-ws-alice", IP: "172.18.0.5", Port: 8080},
		Archive:  &events.ArchiveInfo{Path: "archives/alice.tar.gz", SizeBytes: 4096, SHA256: strings.Repeat("9f", 32)},
		Hold:     true, HoldReason: "course CS-101", IdleTimeoutSeconds: 14400,
		IdleWarning: &events.IdleWarning{IdleSince: at.Add(-3 * time.Hour), StopAt: at.Add(time.Hour)},
		LastError:   "archive dir is read-only",
		StatusSince: at, CreatedAt: at.Add(-24 * time.Hour), UpdatedAt: at, Version: 42,
		Cause: &events.Cause{EventID: "internal", CorrelationID: "internal"},
	}
}
