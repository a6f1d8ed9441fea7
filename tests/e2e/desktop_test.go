package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coder/websocket"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/stretchr/testify/require"
)

const desktopImage = "berth/workspace-desktop:latest"

// desktopProfile is the catalog profile docs/images.md gives for
// berth/workspace-desktop.
var desktopProfile = map[string]any{"port": 8080, "health": "/healthz", "prefix": "strip",
	"activity":  "http:/api/activity#last_input",
	"resources": map[string]any{"memory_bytes": 2 << 30, "milli_cpus": 2000, "pids": 1024}}

// TestDesktopWorkspace: the desktop image on the real stack, in Chromium,
// through Traefik and forwardAuth (path mode, the prefix stripped). Alice
// picks it among the workspaces the dashboard offers; noVNC connects over
// its websocket to the container's VNC server and the desktop is drawn;
// an open but untouched desktop is not activity; she clicks into the
// terminal and types a command, which runs in her home and is activity,
// read from berth-desktop's /api/activity. Bob is refused.
func TestDesktopWorkspace(t *testing.T) {
	s := newStack(t, "BERTH_HEARTBEAT_INTERVAL=1s")
	requireImage(t, s, desktopImage)
	ctx, shots := browser(t)
	admin := s.token("root", "admin")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{
		"ref": desktopImage, "description": "Desktop", "profile": desktopProfile, "launchable": true})
	require.Equal(t, http.StatusCreated, status, "%s", b)

	web := "http://" + s.web
	run := steps(t, ctx, shots)
	run("sign in", signIn(web, "alice"))
	var landed string
	run("launch the desktop from the dashboard",
		launchFromChooser(web, desktopImage, "/vnc.html?"),
		chromedp.Location(&landed),
	)
	base, _, _ := strings.Cut(landed, "vnc.html?")
	ws := s.workspaceAt(admin, base)

	bob := "berth_session=" + s.sessionCookie(s.token("bob", "user"))
	status, _, _ = call(t, "GET", ws.URL+"api/activity", "", nil, "Cookie", bob)
	require.Equal(t, http.StatusForbidden, status, "bob opens alice's desktop")

	run("noVNC connects through the edge and the desktop is drawn",
		untilTrue(t, ws.URL, `document.documentElement.classList.contains("noVNC_connected")`, 15*time.Second),
		chromedp.WaitVisible(`#noVNC_container canvas`, chromedp.ByQuery),
		// Not a blank screen: Openbox's background and the xterm's
		// window give the canvas more than a couple of colours.
		waitJS(`(() => { const c = document.querySelector("#noVNC_container canvas");
			const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data, seen = new Set();
			for (let i = 0; i < d.length; i += 4 * 31) { seen.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); }
			return seen.size > 2; })()`),
		shot(shots, "desktop-connected"),
	)
	connected := time.Now()
	var at string
	run("where noVNC connected", chromedp.Location(&at))
	require.True(t, strings.HasPrefix(at, ws.URL+"vnc.html?"), "landed on %s", at)
	require.Contains(t, at, "path="+neturl.QueryEscape(strings.TrimPrefix(wsurlPath(ws.URL), "/"))+"websockify", "the websocket under the workspace's prefix")

	// Watching is not using: the viewer's own update requests flow, but
	// no activity is recorded after the page's last request.
	lastUse := s.activity()
	time.Sleep(4 * time.Second)
	if at, ok := lastUse(ws.ID); ok {
		require.False(t, at.After(connected.Add(time.Second)), "an untouched desktop recorded activity at %s (connected %s)", at, connected)
	}

	// Another workspace's route comes and goes (two Traefik reloads): the
	// open desktop's websocket stays up, not even reconnected.
	var drops int
	run("watch for disconnections", chromedp.Evaluate(`window.berthDrops = 0; new MutationObserver(() => {
		if (!document.documentElement.classList.contains("noVNC_connected")) { window.berthDrops++; } }).observe(document.documentElement, {attributes: true}); 0`, &drops))
	s.changeRoutes(admin)

	typed := time.Now()
	wrote := func() bool {
		out, _ := s.execIn(ws.ID, "cat", "/home/coder/from-vnc")
		return strings.TrimSpace(out) == "typed-in-vnc"
	}
	// Openbox moves the focus to the clicked window on its own time: keys
	// sent before it has are the root window's. So the (idempotent)
	// command is typed again, a few times at most, until it ran.
	for attempt := 1; ; attempt++ {
		run("type into the terminal",
			clickCanvas(200, 200), // the terminal's window
			chromedp.Sleep(300*time.Millisecond),
			chromedp.KeyEvent(kb.Enter+"echo typed-in-vnc > ~/from-vnc"+kb.Enter),
			shot(shots, fmt.Sprintf("desktop-typed-%d", attempt)),
		)
		ran := false
		for end := time.Now().Add(5 * time.Second); !ran && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			ran = wrote()
		}
		if ran {
			t.Logf("the command ran after %d attempt(s)", attempt)
			break
		}
		require.Less(t, attempt, 4, "the command typed in the desktop's terminal never ran in alice's home")
	}
	until(t, 20*time.Second, "the typing recorded as activity, from berth-desktop's /api/activity", func() bool {
		at, ok := lastUse(ws.ID)
		return ok && !at.Before(typed.Add(-time.Second))
	})
	run("count disconnections", chromedp.Evaluate(`window.berthDrops`, &drops))
	require.Zero(t, drops, "the desktop's connection dropped while another workspace's route changed")
}

// wsurlPath is the path of a workspace's URL.
func wsurlPath(url string) string {
	u, err := neturl.Parse(url)
	if err != nil {
		return ""
	}
	return u.Path
}

// changeRoutes launches a workspace of the default image for a user of its
// own, waits for its route through Traefik, stops it and waits for the
// route to go: two configuration reloads of Traefik.
func (s *stack) changeRoutes(admin string) {
	s.t.Helper()
	status, b, _ := call(s.t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Contains(s.t, []int{http.StatusCreated, http.StatusConflict}, status, "%s", b)
	other := s.token("route-changer", "user")
	ws := s.launch(other)
	until(s.t, 60*time.Second, "another workspace's route through Traefik", func() bool {
		return s.throughTraefik(ws.URL, other) == http.StatusOK
	})
	s.lifecycle(other, ws.ID, "stop")
	s.await(other, ws.ID, "stopped", 60*time.Second)
	until(s.t, 60*time.Second, "the other workspace's route gone", func() bool {
		return s.throughTraefik(ws.URL, other) != http.StatusOK
	})
}

// throughTraefik GETs a workspace's URL at this stack's Traefik, with the
// URL's host as Host (subdomain mode's names resolve nowhere here).
func (s *stack) throughTraefik(url, token string) int {
	u, err := neturl.Parse(url)
	require.NoError(s.t, err)
	host := u.Host
	u.Host = s.web
	status, _, _ := call(s.t, "GET", u.String(), token, nil, "Host", host)
	return status
}

// clickCanvas clicks at x, y on noVNC's canvas (its top left corner is the
// remote screen's).
func clickCanvas(x, y float64) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var box []float64
		if err := chromedp.Evaluate(`(() => { const r = document.querySelector("#noVNC_container canvas").getBoundingClientRect(); return [r.left, r.top]; })()`, &box).Do(ctx); err != nil {
			return err
		}
		return chromedp.MouseClickXY(box[0]+x, box[1]+y, chromedp.ButtonType(input.Left)).Do(ctx)
	})
}

// execIn runs a command in workspace id's container and returns its output.
func (s *stack) execIn(id string, cmd ...string) (string, error) {
	list, err := s.cli.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "berth.workspace.id="+id))})
	if err != nil || len(list) == 0 {
		return "", err
	}
	out, err := exec.Command("docker", append([]string{"exec", list[0].ID}, cmd...)...).CombinedOutput()
	return string(out), err
}

// TestDesktopSubdomain: in subdomain mode the desktop is on a host of its
// own, at its root: berth-desktop's websocket, through Traefik and
// forwardAuth, carries the VNC server's greeting to alice, and survives
// two Traefik reloads; a page of another origin and bob are refused.
func TestDesktopSubdomain(t *testing.T) {
	s := newStack(t, "BERTH_ROUTING_MODE=subdomain", "BERTH_DOMAIN=berth.test")
	requireImage(t, s, desktopImage)
	admin, alice := s.token("root", "admin"), s.token("alice", "user")
	ws := s.aliceRunning(admin, desktopImage, desktopProfile)
	_, port, _ := net.SplitHostPort(s.web)
	host := "alice.berth.test:" + port
	require.Equal(t, "http://"+host+"/", ws.URL)
	until(t, 60*time.Second, "the desktop's page on its own host", func() bool {
		return s.throughTraefik(ws.URL, alice) == http.StatusOK
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(token, origin string) (*websocket.Conn, int, error) {
		conn, res, err := websocket.Dial(ctx, "ws://"+s.web+"/websockify", &websocket.DialOptions{Host: host, Subprotocols: []string{"binary"},
			HTTPHeader: http.Header{"Authorization": {"Bearer " + token}, "Origin": {origin}}})
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		return conn, status, err
	}
	conn, _, err := dial(alice, "http://"+host)
	require.NoError(t, err, "the desktop's websocket through Traefik and forwardAuth")
	defer conn.CloseNow()
	_, banner, err := conn.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, "RFB 003.008\n", string(banner), "the VNC server's greeting")
	// The viewer's side of the handshake: RFB 3.8, no authentication; the
	// server's answer comes over the same websocket after two reloads.
	s.changeRoutes(admin)
	require.NoError(t, conn.Write(ctx, websocket.MessageBinary, []byte("RFB 003.008\n")))
	_, types, err := conn.Read(ctx)
	require.NoError(t, err, "the websocket after Traefik reloaded")
	require.NotEmpty(t, types, "the server's security types")

	_, status, err := dial(alice, "http://evil.test")
	require.Error(t, err, "a page of another origin drove alice's desktop")
	require.Equal(t, http.StatusForbidden, status, "refused, not failed: %v", err)
	_, status, err = dial(s.token("bob", "user"), "http://"+host)
	require.Error(t, err, "bob opened alice's desktop")
	require.Equal(t, http.StatusForbidden, status, "refused, not failed: %v", err)
}
