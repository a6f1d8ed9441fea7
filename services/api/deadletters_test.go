package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/eventlog"
	"github.com/berthdev/berth/pkg/platform/natsbus/natstest"
)

// TestDeadLettersVisible: what the intake could never handle is listed for
// admins with the reason and where it was published, paged; users may not
// read it. Before, dead letters were written and nothing read them.
func TestDeadLettersVisible(t *testing.T) {
	e := newEnv(t)
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")
	nc := natstest.Conn(t, e.nats)
	for _, body := range []string{`not json`, `{"workspace_id":"missing"}`, `{}`} {
		require.NoError(t, nc.Publish(events.IntakeActivitySubject, []byte(body)))
	}
	var page struct {
		Entries []struct {
			Sequence        uint64 `json:"sequence"`
			Consumer        string `json:"consumer"`
			Reason          string `json:"reason"`
			OriginalSubject string `json:"original_subject"`
			Raw             string `json:"raw"`
			Event           any    `json:"event"`
		} `json:"entries"`
		Next uint64 `json:"next"`
	}
	require.Eventually(t, func() bool {
		r := a.do("GET", "/api/v1/deadletters", admin, nil)
		return r.Status == http.StatusOK && jsonInto(r.Body, &page) && len(page.Entries) == 3
	}, 5*time.Second, 20*time.Millisecond)
	first := page.Entries[0]
	assert.Equal(t, "intake", first.Consumer)
	assert.Equal(t, events.IntakeActivitySubject, first.OriginalSubject)
	assert.NotEmpty(t, first.Reason)
	assert.Equal(t, "not json", first.Raw)
	assert.NotNil(t, page.Entries[1].Event, "a JSON message is shown as it was")

	r := a.do("GET", "/api/v1/deadletters?limit=2", admin, nil)
	require.True(t, jsonInto(r.Body, &page))
	require.Len(t, page.Entries, 2)
	require.NotZero(t, page.Next)
	r = a.do("GET", "/api/v1/deadletters?limit=2&after="+itoa(page.Next), admin, nil)
	page.Next = 0 // absent on the last page
	require.True(t, jsonInto(r.Body, &page))
	assert.Len(t, page.Entries, 1)
	assert.Zero(t, page.Next)

	expectProblem(t, a.do("GET", "/api/v1/deadletters", alice, nil), http.StatusForbidden, "forbidden")
	expectProblem(t, a.do("GET", "/api/v1/deadletters?limit=0", admin, nil), http.StatusBadRequest, "invalid_query")
}

// TestDeadLetterShowAndRetry (issue 13): an admin reads one dead letter and
// hands a provisioner's back to it: its original message goes, as it was,
// to berth.redrive.provisioner in the dead-letter stream, saying which dead
// letter it retries. The intake's (activity reports over core NATS) cannot
// be retried, and says so.
func TestDeadLetterShowAndRetry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	l, js := e.bus()
	a := e.startAPI()
	admin, alice := e.token("root", "admin"), e.token("alice", "user")

	wsSubject := events.WorkspaceSubject(uuid.NewString(), events.TypeStartRequested)
	original := []byte(`{"specversion":"1.0","type":"berth.workspace.start_requested"}`)
	provisioner := e.deadLetter(l, "provisioner", wsSubject, original, "failed 6 times: engine on fire")
	intake := e.deadLetter(l, "intake", events.IntakeActivitySubject, []byte("not json"), "malformed activity report")
	path := func(seq uint64, suffix ...string) string {
		return "/api/v1/deadletters/" + itoa(seq) + strings.Join(suffix, "")
	}

	t.Run("show", func(t *testing.T) {
		r := a.do("GET", path(provisioner), admin, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		m := r.json(t)
		assert.EqualValues(t, provisioner, m["sequence"])
		assert.Equal(t, "provisioner", m["consumer"])
		assert.Equal(t, wsSubject, m["original_subject"])
		assert.Equal(t, "failed 6 times: engine on fire", m["reason"])
		assert.Equal(t, "berth.workspace.start_requested", m["event"].(map[string]any)["type"])
		assert.Equal(t, "not json", a.do("GET", path(intake), admin, nil).str(t, "raw"))
	})
	t.Run("retry", func(t *testing.T) {
		r := a.do("POST", path(provisioner, "/retry"), admin, nil)
		require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
		var got struct {
			Retried         uint64 `json:"retried"`
			Consumer        string `json:"consumer"`
			RedriveSequence uint64 `json:"redrive_sequence"`
		}
		require.True(t, jsonInto(r.Body, &got))
		assert.Equal(t, provisioner, got.Retried)
		assert.Equal(t, "provisioner", got.Consumer)
		stream, err := js.Stream(ctx, events.DeadLetterStream)
		require.NoError(t, err)
		m, err := stream.GetMsg(ctx, got.RedriveSequence)
		require.NoError(t, err)
		assert.Equal(t, events.RedriveSubjectPrefix+"provisioner", m.Subject)
		assert.Equal(t, original, m.Data, "the original bytes, as they were")
		assert.Equal(t, wsSubject, m.Header.Get(events.OriginalSubjectHeader))
		assert.Equal(t, itoa(provisioner), m.Header.Get(events.DeadLetterSequenceHeader))
		// A redrive request is not a dead letter.
		expectProblem(t, a.do("GET", path(got.RedriveSequence), admin, nil), http.StatusNotFound, "dead_letter_not_found")
		expectProblem(t, a.do("POST", path(got.RedriveSequence, "/retry"), admin, nil), http.StatusNotFound, "dead_letter_not_found")
	})
	t.Run("refused", func(t *testing.T) {
		r := a.do("POST", path(intake, "/retry"), admin, nil)
		expectProblem(t, r, http.StatusConflict, "dead_letter_not_retryable")
		assert.Contains(t, r.str(t, "detail"), "core NATS")
		expectProblem(t, a.do("GET", path(999), admin, nil), http.StatusNotFound, "dead_letter_not_found")
		expectProblem(t, a.do("POST", path(999, "/retry"), admin, nil), http.StatusNotFound, "dead_letter_not_found")
		for _, bad := range []string{"0", "-1", "abc", "1.5", "99999999999999999999"} {
			expectProblem(t, a.do("GET", "/api/v1/deadletters/"+bad, admin, nil), http.StatusBadRequest, "invalid_path")
			expectProblem(t, a.do("POST", "/api/v1/deadletters/"+bad+"/retry", admin, nil), http.StatusBadRequest, "invalid_path")
		}
		expectProblem(t, a.do("GET", path(provisioner), alice, nil), http.StatusForbidden, "forbidden")
		expectProblem(t, a.do("POST", path(provisioner, "/retry"), alice, nil), http.StatusForbidden, "forbidden")
		expectProblem(t, a.do("POST", path(provisioner, "/retry"), "", nil), http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("cookie rules of admin changes", func(t *testing.T) {
		cookie := a.sessionCookie(admin)
		expectProblem(t, a.withCookie("POST", path(provisioner, "/retry"), cookie, nil), http.StatusForbidden, "cross_origin_refused")
		expectProblem(t, a.withCookie("POST", path(provisioner, "/retry"), cookie, nil, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "cross_origin_refused")
		// Path mode: the cookie carries no admin rights on the API.
		expectProblem(t, a.withCookie("POST", path(provisioner, "/retry"), cookie, nil, "Sec-Fetch-Site", "same-origin"), http.StatusForbidden, "forbidden")
	})
}

// TestDeadLetterStreamUpgradedByTheAPI: an installation whose dead-letter
// stream predates retries (dead letters only) gets berth.redrive.> added
// when the API starts, and a retry is stored.
func TestDeadLetterStreamUpgradedByTheAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	js, err := jetstream.New(natstest.Conn(t, e.nats))
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: events.DeadLetterStream, Subjects: []string{events.DeadLetterSubjectPrefix + ">"}})
	require.NoError(t, err)
	a := e.startAPI()
	l, _ := e.bus()
	seq := e.deadLetter(l, "provisioner", events.WorkspaceSubject(uuid.NewString(), events.TypeStopRequested), []byte(`{}`), "boom")
	r := a.do("POST", "/api/v1/deadletters/"+itoa(seq)+"/retry", e.token("root", "admin"), nil)
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	stream, err := js.Stream(ctx, events.DeadLetterStream)
	require.NoError(t, err)
	assert.EqualValues(t, 2, stream.CachedInfo().State.Msgs, "the dead letter and its retry")
	assert.Contains(t, stream.CachedInfo().Config.Subjects, events.RedriveSubjectPrefix+">")
}

// bus opens the log as another service would, to write dead letters and
// look at the streams.
func (e *env) bus() (*eventlog.Log, jetstream.JetStream) {
	e.t.Helper()
	l, err := eventlog.Open(context.Background(), natstest.Conn(e.t, e.nats), eventlog.Options{})
	require.NoError(e.t, err)
	return l, l.JetStream()
}

// deadLetter stores a dead letter as consumer would and returns its sequence.
func (e *env) deadLetter(l *eventlog.Log, consumer, subject string, data []byte, reason string) uint64 {
	e.t.Helper()
	ctx := context.Background()
	require.NoError(e.t, l.DeadLetter(ctx, consumer, subject, data, reason))
	stream, err := l.JetStream().Stream(ctx, events.DeadLetterStream)
	require.NoError(e.t, err)
	return stream.CachedInfo().State.LastSeq
}

func jsonInto(b []byte, v any) bool { return json.Unmarshal(b, v) == nil }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
