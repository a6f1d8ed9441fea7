package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type entry struct {
	name, body string
	mode       int64
	uid        int
}

func tarOf(t *testing.T, es []entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: time.Unix(1700000000, 0)}
		if e.name[len(e.name)-1] == '/' {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func src(prefix string, b []byte) Source {
	return Source{Prefix: prefix, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }}
}

func TestCreateVerifyExtract(t *testing.T) {
	dir := t.TempDir()
	home := tarOf(t, []entry{{"data/", "", 0o755, 1000}, {"data/notes.txt", "hello", 0o640, 1000}, {"data/.cfg/x", "\x00\x01binary", 0o600, 1000}})
	proj := tarOf(t, []entry{{"projects/", "", 0o755, 0}, {"projects/course/a.go", "package a", 0o644, 0}})
	info, err := Create(dir, "ws/7.tar.gz", []Source{src("home", home), src("projects", proj)})
	if err != nil {
		t.Fatal(err)
	}
	if info.Files != 5 || info.Size == 0 || len(info.SHA256) != 64 {
		t.Fatalf("info %+v", info)
	}
	got, err := Verify(dir, info)
	if err != nil || got != info {
		t.Fatalf("verify: %+v %v", got, err)
	}
	var out bytes.Buffer
	n, err := Extract(dir, info, "home", "data", &out)
	if err != nil || n != 3 {
		t.Fatalf("extract %d %v", n, err)
	}
	if !bytes.Equal(out.Bytes()[:len(out.Bytes())], tarOf(t, []entry{{"data/", "", 0o755, 1000}, {"data/notes.txt", "hello", 0o640, 1000}, {"data/.cfg/x", "\x00\x01binary", 0o600, 1000}})) {
		t.Fatal("extracted home differs from what was archived")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "ws", ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestVerifyDetectsDamage(t *testing.T) {
	dir := t.TempDir()
	info, err := Create(dir, "a.tar.gz", []Source{src("home", tarOf(t, []entry{{"data/f", "some content", 0o644, 0}}))})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "a.tar.gz")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, info); err == nil {
		t.Fatal("damaged archive verified")
	}
	if _, err := Verify(dir, Info{Path: "a.tar.gz"}); err == nil {
		t.Fatal("damaged archive parsed")
	}
	if _, err := Extract(dir, info, "home", "data", io.Discard); err == nil {
		t.Fatal("damaged archive extracted")
	}
	if _, err := Verify(dir, Info{Path: "missing.tar.gz"}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing archive: %v", err)
	}
}

func TestCreateFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The archive folder cannot be created (a file is in the way).
	if _, err := Create(blocker, "ws/1.tar.gz", []Source{src("home", tarOf(t, nil))}); err == nil {
		t.Fatal("archive into a file succeeded")
	}
	// A source that fails midway leaves no archive behind.
	bad := Source{Prefix: "home", Open: func() (io.ReadCloser, error) { return nil, errors.New("engine gone") }}
	if _, err := Create(dir, "ws/2.tar.gz", []Source{bad}); err == nil {
		t.Fatal("failing source archived")
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "ws")); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
}
