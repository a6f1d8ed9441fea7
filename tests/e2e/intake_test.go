package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// intakeReply is what the intake answers.
type intakeReply struct {
	Accepted    bool   `json:"accepted"`
	WorkspaceID string `json:"workspace_id"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	Duplicate   bool   `json:"duplicate"`
}

// TestIntakeOnRealStack: another system, registered by an admin and
// connected with its own credentials, creates a workspace (structured
// mode), starts it (binary mode) until it answers through Traefik, stops it
// and deletes it; a duplicate start is applied once; garbage is refused
// with a code and the next command still works; the audit log names the
// system as the actor.
func TestIntakeOnRealStack(t *testing.T) {
	s := newStack(t)
	s.addDemoImage()
	admin := s.token("root", "admin")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/systems", admin, map[string]any{
		"name": "lms", "owners": []string{"alice"},
		"types": []string{"berth.intake.workspace.create", "berth.intake.workspace.start", "berth.intake.workspace.stop", "berth.intake.workspace.delete"}})
	require.Equal(t, 201, status, "%s", b)
	var reg struct {
		NATSUser string `json:"nats_user"`
		Password string `json:"password"`
		Subject  string `json:"subject"`
		Inbox    string `json:"inbox_prefix"`
	}
	require.NoError(t, json.Unmarshal(b, &reg))
	var nc *nats.Conn
	until(t, 10*time.Second, "the system connects with its credentials", func() bool {
		var err error
		nc, err = nats.Connect("nats://"+s.natsAddr, nats.UserInfo(reg.NATSUser, reg.Password), nats.CustomInboxPrefix(reg.Inbox), nats.Timeout(time.Second))
		return err == nil
	})
	defer nc.Close()
	send := func(h nats.Header, body string) intakeReply {
		m := nats.NewMsg(reg.Subject)
		m.Header, m.Data = h, []byte(body)
		res, err := nc.RequestMsg(m, 15*time.Second)
		require.NoError(t, err)
		var r intakeReply
		require.NoError(t, json.Unmarshal(res.Data, &r), "%s", res.Data)
		return r
	}
	structuredMode := func(id, typ, data string) (nats.Header, string) {
		return nats.Header{"Content-Type": {"application/cloudevents+json"}},
			fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"lms.example/course-7","type":%q,"data":%s}`, id, typ, data)
	}
	binaryMode := func(id, typ, data string) (nats.Header, string) {
		return nats.Header{"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-source": {"lms.example%2Fcourse-7"}, "ce-type": {typ}, "Content-Type": {"application/json"}}, data
	}

	created := send(structuredMode("e2e-1", "berth.intake.workspace.create", `{"name":"alice--course7","owner":"alice"}`))
	require.True(t, created.Accepted, "%+v", created)
	start := func() intakeReply {
		return send(binaryMode("e2e-2", "berth.intake.workspace.start", `{"workspace":"alice--course7"}`))
	}
	require.True(t, start().Accepted)
	assert.True(t, start().Duplicate, "the same command again is answered, not applied")
	alice := s.token("alice", "user")
	until(t, 60*time.Second, "the workspace answers through Traefik", func() bool {
		code, _ := get(t, s.url("alice--course7"), alice)
		return code == 200
	})
	bad := send(structuredMode("e2e-3", "berth.intake.workspace.create", `{"name":"bob--course7","owner":"bob"}`))
	assert.Equal(t, "owner_not_allowed", bad.Code)
	garbage := send(nats.Header{"Content-Type": {"application/cloudevents+json"}}, "not a cloudevent")
	assert.Equal(t, "not_json", garbage.Code)
	require.True(t, send(binaryMode("e2e-4", "berth.intake.workspace.stop", `{"workspace":"alice--course7"}`)).Accepted)
	s.await(admin, created.WorkspaceID, "stopped", 30*time.Second)
	require.True(t, send(structuredMode("e2e-5", "berth.intake.workspace.delete", `{"workspace":"alice--course7","data":"purge"}`)).Accepted)
	s.await(admin, created.WorkspaceID, "deleted", 30*time.Second)

	starts := 0
	for _, e := range s.history(admin, created.WorkspaceID) {
		if e.Type == "berth.workspace.start_requested" {
			starts++
		}
		if strings.HasSuffix(e.Type, "_requested") || e.Type == "berth.workspace.created" {
			assert.Equal(t, "system:lms", e.Actor, e.Type)
			assert.True(t, strings.HasPrefix(e.CausationID, "intake:lms:lms.example/course-7#e2e-"), e.CausationID)
		}
	}
	assert.Equal(t, 1, starts, "one start for the two identical commands")

	// The API's state is the log's: rebuilt with a read-only identity.
	ctl := exec.Command(filepath.Join(s.bin, "berthctl"), "replay", "--verify", "--nats-url", "nats://"+s.natsAddr,
		"--nats-password-file", filepath.Join(s.dir, "data", "nats-users", "router-sync.password"))
	ctl.Env = append(os.Environ(), "BERTH_API_URL=http://"+s.api, "BERTH_TOKEN="+admin)
	out, err := ctl.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), " 0 differences")
}
