package httpapi

import "testing"

// TestLocalPath: a redirect after sign-in stays on this site, whatever
// the next parameter holds (browsers drop tabs and newlines and read \ as
// /, so those would leave it too).
func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/":                        "/",
		"/ui/workspaces/x/history": "/ui/workspaces/x/history",
		"/workspace-alice/?a=1":    "/workspace-alice/?a=1",
		"":                         "/",
		"//evil.example/":          "/",
		"/\t/evil.example":         "/",
		"/\n/evil.example":         "/",
		"/\\evil.example":          "/",
		"\\\\evil.example":         "/",
		"https://evil.example/":    "/",
		"evil.example":             "/",
		"/%2F/evil.example":        "/", // harmless, but refused too: it decodes to //
		"/\x7f/evil":               "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
