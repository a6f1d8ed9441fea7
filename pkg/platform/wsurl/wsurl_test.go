package wsurl

import "testing"

func TestURL(t *testing.T) {
	cases := []struct {
		mode, public, domain, want string
	}{
		{"path", "http://localhost:8000", "", "http://localhost:8000/workspace-alice/"},
		{"path", "https://dev.example.com/ide/", "", "https://dev.example.com/ide/workspace-alice/"},
		{"subdomain", "https://ws.example.com", "", "https://alice.ws.example.com/"},
		{"subdomain", "http://localhost:8000", "localtest.me", "http://alice.localtest.me:8000/"},
	}
	for _, c := range cases {
		s, err := Parse(c.mode, c.public, c.domain)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.URL("alice"); got != c.want {
			t.Errorf("%s %s: got %s want %s", c.mode, c.public, got, c.want)
		}
	}
	for _, bad := range [][2]string{{"path", "localhost:8000"}, {"path", "ftp://x"}, {"vhost", "http://x"}} {
		if _, err := Parse(bad[0], bad[1], ""); err == nil {
			t.Errorf("Parse(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
