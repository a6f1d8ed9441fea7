package natsbus_test

import (
	"reflect"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// TestComposeConfigMatchesPermissions: the compose stack's nats.conf gives
// each identity exactly the rights the embedded server gives it.
func TestComposeConfigMatchesPermissions(t *testing.T) {
	for _, user := range natsbus.Identities {
		t.Setenv("BERTH_NATS_"+envName(user)+"_PASSWORD", "pw-"+user)
	}
	o, err := server.ProcessConfigFile("../../../deploy/compose/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*server.User{}
	for _, u := range o.Users {
		got[u.Username] = u
	}
	if len(got) != len(natsbus.Identities) {
		t.Fatalf("users %v, want %v", keys(got), natsbus.Identities)
	}
	for _, user := range natsbus.Identities {
		u := got[user]
		if u == nil || u.Password != "pw-"+user {
			t.Fatalf("%s: missing or password not from the environment", user)
		}
		if want := natsbus.Permissions(user); !reflect.DeepEqual(normalize(u.Permissions), normalize(want)) {
			t.Errorf("%s: nats.conf %+v, embedded %+v", user, u.Permissions, want)
		}
	}
}

func envName(user string) string {
	out := []byte(user)
	for i, c := range out {
		switch {
		case c == '-':
			out[i] = '_'
		case c >= 'a' && c <= 'z':
			out[i] = c - 'a' + 'A'
		}
	}
	return string(out)
}

func keys(m map[string]*server.User) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// normalize compares publish rights only (neither side sets others).
func normalize(p *server.Permissions) *server.SubjectPermission {
	if p == nil || p.Publish == nil {
		return nil
	}
	return &server.SubjectPermission{Allow: p.Publish.Allow, Deny: p.Publish.Deny}
}
