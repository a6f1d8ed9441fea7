package render

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/berthdev/berth/pkg/events"
	"github.com/berthdev/berth/pkg/platform/wsurl"
	"github.com/berthdev/berth/services/router-sync/internal/configdir"
)

// BenchmarkRenderAndWrite10k: rendering the routes of 10,000 running
// workspaces and writing them atomically into Traefik's directory (temp
// file, fsync, rename), as router-sync does on every change. Goal: < 100
// ms (issue 16).
func BenchmarkRenderAndWrite10k(b *testing.B) {
	wss := make([]events.Workspace, 10000)
	for i := range wss {
		wss[i] = running(fmt.Sprintf("ws%05d", i), fmt.Sprintf("%08d-0000-4000-8000-000000000000", i), fmt.Sprintf("172.18.%d.%d", i/250, i%250+2))
	}
	o := Options{Mode: wsurl.ModePath, EntryPoint: "web", AuthURL: "http://127.0.0.1:8080/api/v1/auth/forward", Backend: BackendIP, APIURL: "http://127.0.0.1:8080"}
	dir := b.TempDir()
	w := &configdir.Writer{Dir: dir, Name: "berth-workspaces.yml"}
	var size int
	for i := 0; b.Loop(); i++ {
		wss[0].Version = uint64(i) // a change every time: nothing skipped as unchanged
		wss[0].Endpoint.Port = 8080 + i%2
		out, err := Render(wss, o)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := w.Write(out); err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	fi, err := os.Stat(filepath.Join(dir, "berth-workspaces.yml"))
	if err != nil || fi.Size() != int64(size) {
		b.Fatalf("written file: %v", err)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/write")
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}
