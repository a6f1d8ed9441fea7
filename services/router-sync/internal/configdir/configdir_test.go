package configdir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dynamic")
	w := &Writer{Dir: dir, Name: "berth.yml"}
	for i, c := range []struct {
		content string
		written bool
	}{{"a: 1\n", true}, {"a: 1\n", false}, {"a: 2\n", true}} {
		written, err := w.Write([]byte(c.content))
		if err != nil || written != c.written {
			t.Fatalf("step %d: written=%v err=%v", i, written, err)
		}
		got, _ := os.ReadFile(filepath.Join(dir, "berth.yml"))
		if string(got) != c.content {
			t.Fatalf("step %d: file %q", i, got)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
	// A fresh writer (restart) does not rewrite identical content.
	w2 := &Writer{Dir: dir, Name: "berth.yml"}
	if written, err := w2.Write([]byte("a: 2\n")); err != nil || written {
		t.Fatalf("restart rewrote identical content: %v %v", written, err)
	}
	// An unwritable directory is an error, not a silent loss.
	ro := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		if _, err := (&Writer{Dir: ro, Name: "x.yml"}).Write([]byte("x")); err == nil {
			t.Fatal("write into read-only dir succeeded")
		}
	}
}
