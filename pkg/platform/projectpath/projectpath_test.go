package projectpath

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestResolve(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "projects")
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(base, "secret"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustLink := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	mustLink(filepath.Join(base, "secret"), "out")
	mustLink("a/b", "inside") // a symlink that stays inside the root is fine
	mustLink("..", "up")
	mustLink("/var/run", "sock")

	ok := map[string]string{"a": "a", "a/b": "a/b", "c": "c", "inside": "a/b"}
	for rel, want := range ok {
		got, err := Resolve(root, rel)
		if err != nil {
			t.Errorf("%q: %v", rel, err)
			continue
		}
		realRoot, _ := filepath.EvalSymlinks(root)
		if got != filepath.Join(realRoot, want) {
			t.Errorf("%q resolved to %s", rel, got)
		}
	}
	bad := map[string]string{
		"":          CodeEmpty,
		"/etc":      CodeAbsolute,
		"../x":      CodeTraversal,
		"a/../../x": CodeTraversal,
		"a/":        CodeNotClean,
		"./a":       CodeNotClean,
		".":         CodeNotClean,
		"a//b":      CodeNotClean,
		"a b":       CodeChars,
		"a\x00":     CodeChars,
		"missing":   CodeMissing,
		"file":      CodeNotDir,
		"out":       CodeEscape,
		"up":        CodeEscape,
		"sock":      CodeEscape,
	}
	for rel, code := range bad {
		_, err := Resolve(root, rel)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != code {
			t.Errorf("%q: want %s, got %v", rel, code, err)
		}
	}
	if _, err := Resolve(filepath.Join(base, "no-root"), "a"); err == nil {
		t.Error("missing projects root accepted")
	}
}
