package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// TestBrowserJupyter is a student's first hour with the Jupyter image, by
// clicks in Chromium on the real stack: sign in, pick "Jupyter" among the
// workspaces the dashboard offers, land in Jupyter's file browser; New →
// Python 3, type 6*7 in the first cell, Shift+Enter, read 42; New → Text
// File, rename it hello.py, write a line of Python, save; New → Terminal,
// run python3 hello.py and read its answer; the workspace stops and starts
// again and hello.py is still in the file browser. Bob, signed in, opening
// the same URL gets a refusal, never Jupyter.
func TestBrowserJupyter(t *testing.T) {
	s := newStack(t)
	requireImage(t, s, jupyterImage)
	ctx, shots := browser(t)
	admin := s.token("root", "admin")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{
		"ref": jupyterImage, "description": "Jupyter Notebook: Python, Node.js, Java, C/C++", "profile": jupyterProfile, "launchable": true})
	require.Equal(t, http.StatusCreated, status, "%s", b)

	web := "http://" + s.web
	run := steps(t, ctx, shots)
	run("sign in", signIn(web, "alice"), shot(shots, "jupyter-1-dashboard"))
	var tree string
	run("launch Jupyter from the dashboard",
		launchFromChooser(web, jupyterImage, "/tree"),
		chromedp.WaitVisible(`#notebook_list`, chromedp.ByID),
		chromedp.Location(&tree),
		shot(shots, "jupyter-2-file-browser"),
	)
	tree, _, _ = strings.Cut(tree, "?")
	base := strings.TrimSuffix(tree, "tree")
	t.Logf("Jupyter at %s", base)

	run("New → Python 3", fromNewMenu(tree, `#kernel-python3 a`, "/notebooks/"))
	run("a cell computes 6*7",
		chromedp.WaitVisible(`#kernel_indicator_icon.kernel_idle_icon`, chromedp.ByQuery),
		chromedp.Click(`.code_cell .CodeMirror`, chromedp.ByQuery),
		chromedp.KeyEvent("6*7"),
		chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(input.ModifierShift)),
		waitText(`.output_result pre`, "42"),
		shot(shots, "jupyter-3-notebook-42"),
	)

	run("New → Text File", fromNewMenu(tree, `#new-file a`, "/edit/"))
	run("name the file hello.py",
		chromedp.WaitVisible(`#save_widget .filename`, chromedp.ByQuery),
		chromedp.Click(`#save_widget .filename`, chromedp.ByQuery),
		chromedp.WaitVisible(`.modal-dialog input`, chromedp.ByQuery),
		chromedp.SetValue(`.modal-dialog input`, "hello.py", chromedp.ByQuery),
		chromedp.Click(`.modal-footer .btn-primary`, chromedp.ByQuery),
		waitText(`#save_widget .filename`, "hello.py"),
	)
	run("write and save it",
		chromedp.WaitNotPresent(`.modal-dialog`, chromedp.ByQuery),
		chromedp.Click(`.CodeMirror`, chromedp.ByQuery),
		chromedp.KeyEvent(`print("hello from the editor", 6*7)`),
		chromedp.Click(`//a[normalize-space()="File"]`, chromedp.BySearch),
		chromedp.Click(`#save-file a`, chromedp.ByQuery),
		shot(shots, "jupyter-4-editor"),
	)
	ws := s.workspaceAt(admin, base)
	until(t, 15*time.Second, "hello.py saved in alice's home", func() bool {
		out, _ := s.execIn(ws.ID, "cat", "/home/coder/hello.py")
		return strings.TrimSpace(out) == `print("hello from the editor", 6*7)`
	})

	run("New → Terminal", fromNewMenu(tree, `#new-terminal a`, "/terminals/"))
	run("run hello.py in a Jupyter terminal",
		waitJS(`!!(window.terminal && window.terminal.socket.readyState === 1)`),
		chromedp.Click(`#terminado-container`, chromedp.ByID),
		chromedp.KeyEvent("python3 hello.py"+kb.Enter),
		waitJS(`(() => { const t = window.terminal.term, out = [];
			if (t.buffer && t.buffer.active) { // xterm.js 4 and later
				const b = t.buffer.active;
				for (let i = 0; i < b.length; i++) { out.push(b.getLine(i).translateToString(true)); }
			} else { // Debian's xterm.js 3.8
				const b = (t._core || t).buffer;
				for (let i = 0; i < b.lines.length; i++) { out.push(b.translateBufferLineToString(i, true)); }
			}
			return out.join("\n").includes("hello from the editor 42"); })()`),
		shot(shots, "jupyter-5-terminal"),
	)

	alice := s.token("alice", "user")
	s.lifecycle(alice, ws.ID, "stop")
	s.await(alice, ws.ID, "stopped", 60*time.Second)
	s.lifecycle(alice, ws.ID, "start")
	s.await(alice, ws.ID, "running", 90*time.Second)
	run("hello.py is still there after a stop and a start",
		untilListed(t, tree, "hello.py"),
		shot(shots, "jupyter-6-after-restart"),
	)

	// Bob, signed in in a browser of his own, opens alice's URL.
	bob, _ := browser(t)
	var body string
	runBob := steps(t, bob, shots)
	runBob("bob is refused", signIn(web, "bob"), navigate(tree), chromedp.Text(`body`, &body, chromedp.ByQuery), shot(shots, "jupyter-7-bob"))
	require.Contains(t, body, "This workspace is not yours", "bob gets Berth's refusal")
	require.Contains(t, body, "You are signed in as bob")
	require.NotContains(t, body, "Jupyter", "bob sees alice's Jupyter")
	require.NotContains(t, body, "hello.py")
	status, _, _ = call(t, "GET", tree, "", nil, "Cookie", "berth_session="+s.sessionCookie(s.token("bob", "user")))
	require.Equal(t, http.StatusForbidden, status)
}

// launchFromChooser presses Launch beside image under "Other workspaces
// you can launch" and waits until the tab is in alice's workspace of it,
// at a URL holding part.
func launchFromChooser(web, image, part string) chromedp.Action {
	chooser := `button[data-launch="` + image + `"]`
	return chromedp.Tasks{
		chromedp.WaitVisible(chooser, chromedp.ByQuery),
		chromedp.Click(chooser, chromedp.ByQuery),
		waitLocationPrefix(web+"/workspace-alice--", part),
	}
}

// fromNewMenu opens Jupyter's file browser at tree and picks item in its
// New menu. Jupyter opens what it made in a new tab; here it opens in the
// same one (Jupyter._target, the setting notebook 6 reads for that), which
// keeps one tab to drive (chromedp v0.14 races attaching to a tab a page
// opened).
func fromNewMenu(tree, item, want string) chromedp.Action {
	return chromedp.Tasks{
		navigate(tree),
		chromedp.WaitVisible(`#new-dropdown-button`, chromedp.ByID),
		chromedp.Evaluate(`Jupyter._target = "_self"; 0`, nil),
		chromedp.Click(`#new-dropdown-button`, chromedp.ByID),
		chromedp.WaitVisible(item, chromedp.ByQuery),
		chromedp.Click(item, chromedp.ByQuery),
		waitLocationPrefix(strings.TrimSuffix(tree, "tree"), want),
	}
}

// workspaceAt is the workspace served at url (its base URL).
func (s *stack) workspaceAt(token, url string) wsView {
	s.t.Helper()
	status, b, _ := call(s.t, "GET", "http://"+s.api+"/api/v1/workspaces", token, nil)
	require.Equal(s.t, http.StatusOK, status, "%s", b)
	var list struct{ Workspaces []wsView }
	require.NoError(s.t, json.Unmarshal(b, &list))
	for _, ws := range list.Workspaces {
		if ws.URL == url {
			return ws
		}
	}
	s.t.Fatalf("no workspace at %s", url)
	return wsView{}
}

// untilListed opens Jupyter's file browser at url until it lists name.
// Right after a start the route may still be settling in Traefik: a page
// whose listing call got a 404 is opened again, as a person would reload.
func untilListed(t *testing.T, url, name string) chromedp.Action {
	return untilTrue(t, url, fmt.Sprintf(`[...document.querySelectorAll("#notebook_list a.item_link")].some(a => a.textContent.trim() === %q)`, name), 5*time.Second)
}

// untilTrue opens url until expr holds on the page within each's patience,
// as a person reloads a page that did not come up (one of its many
// scripts lost, as Chromium drops requests when the machine's network
// changes); each reload is logged.
func untilTrue(t *testing.T, url, expr string, patience time.Duration) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			if attempt > 1 {
				t.Logf("%s: not there after %s, reloading (attempt %d)", url, patience, attempt)
			}
			if err := navigate(url).Do(ctx); err == nil {
				for end := time.Now().Add(patience); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
					var ok bool
					if chromedp.Evaluate(expr, &ok).Do(ctx) == nil && ok {
						return nil
					}
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	})
}

// waitJS waits until the expression is true on the page.
func waitJS(expr string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var ok bool
			if err := chromedp.Evaluate(expr, &ok).Do(ctx); err == nil && ok {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// waitLocationPrefix waits until the tab's URL starts with prefix and
// holds part.
func waitLocationPrefix(prefix, part string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var at string
			if err := chromedp.Location(&at).Do(ctx); err == nil && strings.HasPrefix(at, prefix) && strings.Contains(at, part) {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}
