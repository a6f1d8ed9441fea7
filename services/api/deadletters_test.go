package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
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

func jsonInto(b []byte, v any) bool { return json.Unmarshal(b, v) == nil }

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
