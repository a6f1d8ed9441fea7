package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLogsThroughBerthctl: the owner reads the workspace container's
// output with berthctl logs (the API asks the provisioner, which reads the
// engine); another user may not; with no provisioner the answer says the
// feature is not available instead of hanging.
func TestLogsThroughBerthctl(t *testing.T) {
	s := newStack(t)
	s.addDemoImage()
	alice, bob := s.token("alice", "user"), s.token("bob", "user")
	ws := s.launch(alice)
	s.await(alice, ws.ID, "running", 30*time.Second)

	ctl := exec.Command(filepath.Join(s.bin, "berthctl"), "logs", "alice", "-n", "50")
	ctl.Env = append(os.Environ(), "BERTH_API_URL=http://"+s.api, "BERTH_TOKEN="+alice)
	out, err := ctl.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "workspace-demo listening", "the container's own first line")

	logsURL := "http://" + s.api + "/api/v1/workspaces/" + ws.ID + "/logs"
	code, body := get(t, logsURL+"?tail=1&timestamps=true", alice)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(body), "\n")+1, "one line: %q", body)
	_, err = time.Parse(time.RFC3339Nano, strings.Fields(body)[0])
	assert.NoError(t, err, "the line starts with the engine's time: %q", body)

	code, body = get(t, logsURL, bob)
	assert.Equal(t, http.StatusNotFound, code, "another user's logs: %s", body)
	code, body = get(t, logsURL+"?tail=0", alice)
	assert.Equal(t, http.StatusUnprocessableEntity, code, body)

	s.kill("provisioner")
	code, body = get(t, logsURL, alice)
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Contains(t, body, "engine_unavailable")
}
