package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/events"
)

// TestDeadLettersThroughBerthctl: an operator sees what the bus could
// never handle, with the reason, from the command line.
func TestDeadLettersThroughBerthctl(t *testing.T) {
	s := newStack(t)
	admin := s.token("root", "admin")
	nc := s.natsConn()
	defer nc.Close()
	require.NoError(t, nc.Publish(events.IntakeActivitySubject, []byte(`{"workspace_id":"nobody"}`)))
	require.NoError(t, nc.Flush())
	var out []byte
	until(t, 10*time.Second, "dead letter listed", func() bool {
		ctl := exec.Command(filepath.Join(s.bin, "berthctl"), "deadletters")
		ctl.Env = append(os.Environ(), "BERTH_API_URL=http://"+s.api, "BERTH_TOKEN="+admin)
		var err error
		out, err = ctl.CombinedOutput()
		return err == nil && strings.Contains(string(out), "nobody")
	})
	assert.Contains(t, string(out), "intake\t"+events.IntakeActivitySubject)
	assert.Contains(t, string(out), "no such workspace")
}
