package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
)

// BenchmarkLaunchToFirstUse measures what a student waits for, per image,
// through Traefik and forwardAuth as the browser goes: POST
// /workspaces/launch with the image -> the terminal's first command
// answered over its websocket (berth/workspace-debian), or the first
// notebook cell's result from a new Python kernel (berth/workspace-jupyter).
// Each launch is a new user's; the workspace is stopped between runs.
// Run with -benchtime 5x.
func BenchmarkLaunchToFirstUse(b *testing.B) {
	s := newStack(b)
	admin := s.token("root", "admin")
	images := []struct {
		name, ref string
		profile   map[string]any
		use       func(tb testing.TB, ctx context.Context, ws wsView, cookie string)
	}{
		{"terminal", debianImage, nil, func(tb testing.TB, _ context.Context, ws wsView, cookie string) {
			until(tb, 30*time.Second, "the terminal page", func() bool {
				status, _ := get(tb, ws.URL, "", "Cookie", "berth_session="+cookie)
				return status == http.StatusOK
			})
			term := dialTerminal(tb, s, ws.URL, cookie)
			line, _ := json.Marshal(map[string]string{"type": "input", "data": "echo $((40+2))\r"})
			require.NoError(tb, term.Write(context.Background(), websocket.MessageText, line))
			readTerminal(tb, term, "42\r\n")
		}},
		{"notebook", jupyterImage, jupyterProfile, func(tb testing.TB, ctx context.Context, ws wsView, cookie string) {
			nb := &jupyter{url: ws.URL, cookie: "berth_session=" + cookie}
			nb.tree(tb, 60*time.Second)
			conn := nb.openKernel(ctx, tb)
			require.Equal(tb, "42\n", runCell(ctx, tb, conn, "print(6*7)"))
		}},
	}
	for _, img := range images {
		b.Run(img.name, func(b *testing.B) {
			requireImage(b, s, img.ref)
			body := map[string]any{"ref": img.ref, "launchable": true}
			if img.profile != nil {
				body["profile"] = img.profile
			}
			status, out, _ := call(b, "POST", "http://"+s.api+"/api/v1/images", admin, body)
			require.Contains(b, []int{http.StatusCreated, http.StatusConflict}, status, "%s", out)
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				tok := s.token(fmt.Sprintf("%s-user%d", img.name, i), "user")
				cookie := s.sessionCookie(tok)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				b.StartTimer()
				start := time.Now()
				status, out, _ := call(b, "POST", "http://"+s.api+"/api/v1/workspaces/launch", tok, map[string]any{"image": img.ref})
				require.Contains(b, []int{200, 201, 202}, status, "%s", out)
				var ws wsView
				require.NoError(b, json.Unmarshal(out, &ws))
				img.use(b, ctx, ws, cookie)
				took = append(took, time.Since(start))
				b.StopTimer()
				cancel()
				s.lifecycle(tok, ws.ID, "stop")
				s.await(tok, ws.ID, "stopped", 60*time.Second)
				b.StartTimer()
			}
			b.ReportMetric(pctMs(took, 0.5), "first-use-p50-ms")
			b.ReportMetric(pctMs(took, 0.95), "first-use-p95-ms")
		})
	}
}
