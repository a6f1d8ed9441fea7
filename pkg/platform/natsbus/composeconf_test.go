package natsbus_test

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// TestComposeConfigMatchesPermissions: the compose stack's nats.conf gives
// each identity exactly the rights the embedded server gives it.
// Run with -update to write deploy/compose/nats.conf from Permissions.
func TestComposeConfigMatchesPermissions(t *testing.T) {
	const path = "../../../deploy/compose/nats.conf"
	if *update {
		if err := os.WriteFile(path, []byte(composeConfig()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range natsbus.Identities {
		t.Setenv("BERTH_NATS_"+envName(user)+"_PASSWORD", "pw-"+user)
	}
	o, err := server.ProcessConfigFile(path)
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

// normalize compares publish and subscribe rights (neither side sets
// others).
func normalize(p *server.Permissions) [2]*server.SubjectPermission {
	var out [2]*server.SubjectPermission
	if p == nil {
		return out
	}
	for i, sp := range []*server.SubjectPermission{p.Publish, p.Subscribe} {
		if sp != nil {
			out[i] = &server.SubjectPermission{Allow: sp.Allow, Deny: sp.Deny}
		}
	}
	return out
}

var update = flag.Bool("update", false, "write deploy/compose/nats.conf from natsbus.Permissions")

func composeConfig() string {
	var b strings.Builder
	b.WriteString(`# NATS for the compose stack: JetStream on /data, and only Berth's
# identities let in, each with the rights natsbus.Permissions gives it.
# Generated: go test ./natsbus -run TestComposeConfig -update (in pkg/platform);
# the same test fails when the two differ. Passwords come from the environment.
port: 4222
http_port: 8222
jetstream {
  store_dir: /data
}
authorization {
  users: [
`)
	for _, user := range natsbus.Identities {
		fmt.Fprintf(&b, "    {user: %s, password: $BERTH_NATS_%s_PASSWORD", user, envName(user))
		if p := natsbus.Permissions(user); p != nil {
			b.WriteString(", permissions: {\n")
			for _, side := range []struct {
				name string
				sp   *server.SubjectPermission
			}{{"publish", p.Publish}, {"subscribe", p.Subscribe}} {
				if side.sp == nil {
					continue
				}
				fmt.Fprintf(&b, "      %s: {\n", side.name)
				if len(side.sp.Allow) > 0 {
					fmt.Fprintf(&b, "        allow: %s\n", quoteList(side.sp.Allow))
				}
				if len(side.sp.Deny) > 0 {
					fmt.Fprintf(&b, "        deny: %s\n", quoteList(side.sp.Deny))
				}
				b.WriteString("      }\n")
			}
			b.WriteString("    }")
		}
		b.WriteString("}\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func quoteList(subjects []string) string {
	q := make([]string, len(subjects))
	for i, s := range subjects {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
