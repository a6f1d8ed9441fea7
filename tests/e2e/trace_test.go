package e2e

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// span is one span as the receiver got it.
type span struct {
	service, name     string
	trace, id, parent string
	kind              string
	attributes        map[string]string
}

// otlpReceiver is an in-process OTLP/HTTP trace receiver: what a collector
// would get from Berth's services.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []span
	addr  string
}

func startReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return r
}

func (r *otlpReceiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		http.NotFound(w, req)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, a := range s.Attributes {
					attrs[a.Key] = a.GetValue().GetStringValue()
				}
				r.spans = append(r.spans, span{service: service, name: s.Name, trace: hex.EncodeToString(s.TraceId),
					id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId),
					kind: s.Kind.String(), attributes: attrs})
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// trace returns the spans of one trace.
func (r *otlpReceiver) trace(id string) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if s.trace == id {
			out = append(out, s)
		}
	}
	return out
}

// TestOneLaunchOneTrace is the bus-platform issue's tracing acceptance: the
// services export to an OTLP receiver, configured only by the standard
// OTEL_* variables, and one launch is ONE trace that covers the HTTP
// request, the appends, the provisioner's handling with its Docker calls,
// the running event and router-sync's route write, each parented inside it.
func TestOneLaunchOneTrace(t *testing.T) {
	rcv := startReceiver(t)
	s := newStack(t, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+rcv.addr, "OTEL_BSP_SCHEDULE_DELAY=100")
	s.addDemoImage()
	token := s.token("tracy", "user")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/workspaces/launch", token, nil,
		"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	require.Contains(t, []int{200, 201, 202}, status, "%s", b)
	var ws wsView
	require.NoError(t, json.Unmarshal(b, &ws))
	s.await(token, ws.ID, "running", 60*time.Second)

	has := func(spans []span, service, name string) bool {
		for _, sp := range spans {
			if sp.service == service && strings.HasPrefix(sp.name, name) {
				return true
			}
		}
		return false
	}
	want := []struct{ service, name string }{
		{"berth-api", "POST /api/v1/workspaces/launch"},         // otelecho's server span
		{"berth-api", "append berth.workspace.start_requested"}, // producer
		{"berth-provisioner", "process start_requested"},        // consumer
		{"berth-provisioner", "provision ensure-running"},
		{"berth-provisioner", "POST /v"}, // the engine calls (Docker's client names them by method and path)
		{"berth-provisioner", "append berth.workspace.running"},
		{"berth-router-sync", "write routes"},
	}
	var spans []span
	missing := func() []string {
		var out []string
		for _, w := range want {
			if !has(spans, w.service, w.name) {
				out = append(out, w.service+"/"+w.name)
			}
		}
		return out
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		spans = rcv.trace(traceID)
		if len(missing()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			rcv.mu.Lock()
			for _, sp := range rcv.spans {
				t.Logf("received: %s %s %s parent=%s", sp.trace, sp.service, sp.name, sp.parent)
			}
			rcv.mu.Unlock()
			t.Fatalf("missing from the launch's trace: %v", missing())
		}
	}
	ids := map[string]bool{"00f067aa0ba902b7": true} // the caller's span
	for _, sp := range spans {
		ids[sp.id] = true
	}
	for _, sp := range spans {
		assert.True(t, ids[sp.parent], "%s/%s has a parent outside the trace", sp.service, sp.name)
	}
	for _, sp := range spans {
		if strings.HasPrefix(sp.name, "append ") || strings.HasPrefix(sp.name, "process ") {
			assert.Equal(t, "nats", sp.attributes["messaging.system"], "%s", sp.name)
			assert.Contains(t, sp.attributes["messaging.destination.name"], ws.ID, "%s", sp.name)
		}
	}
	t.Logf("one launch, one trace: %d spans", len(spans))
	for _, sp := range spans {
		t.Logf("  %-18s %-9s %s", sp.service, strings.TrimPrefix(sp.kind, "SPAN_KIND_"), sp.name)
	}
}
