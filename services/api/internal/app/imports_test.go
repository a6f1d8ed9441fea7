package app_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestAppImportsNoAdapter: the use cases depend on the ports they declare
// (Log, Names, Engine, DeadLetters and their errors); the bus clients are
// fitted to them in internal/adapters and main.go. The platform packages
// app may use are rules shared with other services, not I/O to the bus.
func TestAppImportsNoAdapter(t *testing.T) {
	forbidden := []string{
		"github.com/nats-io/",
		"github.com/berthdev/berth/pkg/platform/eventlog",
		"github.com/berthdev/berth/pkg/platform/enginestatus",
		"github.com/berthdev/berth/pkg/platform/natsbus",
		"github.com/berthdev/berth/pkg/platform/activity",
		"github.com/berthdev/berth/pkg/platform/installation",
		"github.com/berthdev/berth/services/api/internal/",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if strings.HasPrefix(path, bad) {
					t.Errorf("%s imports %s: declare the port in app and adapt it in internal/adapters", f, path)
				}
			}
		}
	}
}
