package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// browser starts headless Chromium (Debian's package; .ci/run installs it)
// and returns a tab's context. Screenshots go to BERTH_SCREENSHOTS, else
// to a folder of the test's.
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) (context.Context, string) {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("BERTH_REQUIRE_DOCKER") == "1" {
			t.Fatal("chromium is missing: scripts/ensure-chromium.sh installs it (apt)")
		}
		t.Skip("chromium is missing: scripts/ensure-chromium.sh installs it (apt)")
	}
	shots := os.Getenv("BERTH_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(t.TempDir(), "screenshots")
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	t.Logf("screenshots: %s", shots)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.Flag("disable-dev-shm-usage", true))
	opts = append(opts, extra...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	logConsole(t, ctx)
	// The first Run starts the browser and ties it to its context: this
	// one, not a step's shorter one. (The network domain: failed requests
	// are logged.)
	require.NoError(t, chromedp.Run(ctx, network.Enable()))
	return ctx, shots
}

// logConsole sends the tab's console and uncaught errors to the test's log.
func logConsole(t *testing.T, ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value))
			}
			t.Logf("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			t.Logf("page error: %s", ev.ExceptionDetails.Error())
		case *page.EventJavascriptDialogOpening:
			// "Leave this page?" (Jupyter's unsaved-changes guard) would
			// hold the tab's next navigation forever: accepted, as a
			// person leaving the page would.
			t.Logf("dialog %s: %q (accepted)", ev.Type, ev.Message)
			go func() { _ = chromedp.Run(ctx, page.HandleJavaScriptDialog(true)) }()
		case *network.EventLoadingFailed:
			// A request that never got an answer (a module of the page,
			// a fetch): why the page may never have come up.
			if !ev.Canceled {
				t.Logf("request failed: %s (%s)", ev.ErrorText, ev.Type)
			}
		}
	})
}

// steps returns a runner of named browser steps: each has a minute, and a
// failed one leaves a screenshot and says where the page was.
func steps(t *testing.T, ctx context.Context, shots string) func(what string, actions ...chromedp.Action) {
	return func(what string, actions ...chromedp.Action) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		if err := chromedp.Run(tctx, actions...); err != nil {
			var at string
			_ = chromedp.Run(ctx, chromedp.Location(&at), shot(shots, "failed-"+strings.ReplaceAll(what, " ", "-")))
			t.Fatalf("%s (at %s): %v", what, at, err)
		}
	}
}

// dropFirstAnswers makes the tab lose the answer to its first request
// whose URL holds each of parts (the server has handled it; the page sees
// a network error, as when Chromium drops requests in flight); later ones
// pass. It returns whether each was dropped.
func dropFirstAnswers(t *testing.T, ctx context.Context, parts ...string) map[string]*atomic.Bool {
	dropped := map[string]*atomic.Bool{}
	var patterns []*fetch.RequestPattern
	for _, p := range parts {
		dropped[p] = new(atomic.Bool)
		patterns = append(patterns, &fetch.RequestPattern{URLPattern: "*" + p + "*", RequestStage: fetch.RequestStageResponse})
	}
	chromedp.ListenTarget(ctx, func(ev any) {
		paused, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		go func() { // not on the event loop: these are calls to the browser
			for _, p := range parts {
				if strings.Contains(paused.Request.URL, p) && dropped[p].CompareAndSwap(false, true) {
					t.Logf("dropping the answer to %s %s", paused.Request.Method, paused.Request.URL)
					_ = chromedp.Run(ctx, fetch.FailRequest(paused.RequestID, network.ErrorReasonConnectionReset))
					return
				}
			}
			_ = chromedp.Run(ctx, fetch.ContinueRequest(paused.RequestID))
		}()
	})
	require.NoError(t, chromedp.Run(ctx, fetch.Enable().WithPatterns(patterns)))
	return dropped
}

// navigate opens url in the tab. Chromium fails a load with
// net::ERR_NETWORK_CHANGED when the host's addresses change under it, and
// Docker changes them (a bridge, a container's veth) while a stack starts:
// such a load is tried again, the way a person presses reload.
func navigate(url string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			err := chromedp.Navigate(url).Do(ctx)
			if err == nil || !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") || attempt == 5 {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
			}
		}
	})
}

// shot saves a screenshot of the whole page as <n>-<name>.png.
func shot(shots, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var png []byte
		if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644)
	})
}

// TestBrowserLaunchToTerminal is the product's promise, in a real browser
// on the real stack: sign in, press Launch workspace, watch the progress,
// land in the terminal, type echo $((40+2)) and read 42; the admin's
// project folder is there; stopping from the dashboard tells the terminal
// tab the workspace stopped.
func TestBrowserLaunchToTerminal(t *testing.T) {
	s := newStack(t, "BERTH_DEFAULT_IMAGE="+debianImage)
	requireImage(t, s, debianImage)
	ctx, shots := browser(t)
	admin := s.token("root", "admin")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": debianImage, "description": "Debian with a browser terminal"})
	require.Equal(t, 201, status, "%s", b)
	require.NoError(t, os.MkdirAll(filepath.Join(s.dir, "projects", "cs101"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "projects", "cs101", "README"), []byte("welcome to cs101\n"), 0o644))
	// The admin defines alice's course workspace (berthctl or the API in
	// path mode; the dashboard's form in subdomain mode).
	status, b, _ = call(t, "POST", "http://"+s.api+"/api/v1/workspaces", admin, map[string]any{
		"name": "alice--cs101", "owner": "alice", "image": debianImage, "projects": []string{"cs101"}, "description": "CS 101 lab"})
	require.Equal(t, 201, status, "%s", b)

	run := steps(t, ctx, shots)
	web := "http://" + s.web
	until(t, 15*time.Second, "the dashboard's route through Traefik", func() bool {
		code, _ := get(t, web+"/ui/signin", "")
		return code == 200
	})
	run("sign in",
		navigate(web+"/"),
		chromedp.WaitVisible(`#sub`, chromedp.ByID),
		shot(shots, "1-sign-in"),
		chromedp.SetValue(`#sub`, "alice", chromedp.ByID),
		chromedp.Click(`button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#launch`, chromedp.ByID),
		shot(shots, "2-dashboard"),
	)
	// The launch's first answer and its progress stream's are lost on the
	// way back (as Chromium drops requests in flight when the machine's
	// network changes): the dashboard asks again, the launch being
	// idempotent, follows again, and lands all the same.
	dropped := dropFirstAnswers(t, ctx, "/api/v1/workspaces/launch", "/progress")
	var progress string
	run("launch",
		chromedp.Click(`#launch`, chromedp.ByID),
		chromedp.WaitVisible(`#progress`, chromedp.ByID),
		chromedp.Text(`#progress-text`, &progress, chromedp.ByID),
		shot(shots, "3-progress"),
	)
	t.Logf("progress shown: %q", progress)
	var url string
	run("the terminal opens",
		chromedp.WaitVisible(`.terminal`, chromedp.ByQuery),
		waitText(`#status`, "connected"),
		chromedp.Location(&url),
	)
	require.Equal(t, s.url("alice"), url, "the launch landed in alice's workspace")
	for part, d := range dropped {
		require.True(t, d.Load(), "the first answer to %s was never dropped", part)
	}
	require.NoError(t, chromedp.Run(ctx, fetch.Disable()))
	run("type",
		focusTerminal(),
		chromedp.KeyEvent("echo $((40+2))"+kb.Enter),
		waitLine(`.terminal`, "42"),
		shot(shots, "4-terminal-42"),
	)

	// The admin's workspace for alice, with its project folder.
	run("the course workspace",
		navigate(web+"/"),
		chromedp.WaitVisible(`tr[data-name="alice--cs101"] button[data-action=start]`, chromedp.ByQuery),
		chromedp.Click(`tr[data-name="alice--cs101"] button[data-action=start]`, chromedp.ByQuery),
		waitLocation(s.url("alice--cs101")),
		waitText(`#status`, "connected"),
		focusTerminal(),
		chromedp.KeyEvent("cat ~/project/cs101/README"+kb.Enter),
		waitLine(`.terminal`, "welcome to cs101"),
		shot(shots, "5-project-folder"),
	)

	// Stop alice's own workspace from the dashboard in another tab; its
	// terminal tab says so.
	termTab, cancelTerm := chromedp.NewContext(ctx)
	defer cancelTerm()
	require.NoError(t, chromedp.Run(termTab)) // the tab lives as long as termTab
	tctx, cancel := context.WithTimeout(termTab, 60*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Run(tctx, navigate(s.url("alice")), waitText(`#status`, "connected")))
	run("stop from the dashboard",
		navigate(web+"/"),
		chromedp.WaitVisible(`tr[data-name="alice"] button[data-action=stop]`, chromedp.ByQuery),
		chromedp.Click(`tr[data-name="alice"] button[data-action=stop]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-name="alice"] button[data-action=start]`, chromedp.ByQuery),
		shot(shots, "6-dashboard-stopped"),
	)
	require.NoError(t, chromedp.Run(tctx, waitText(`#status`, "disconnected"), shot(shots, "7-terminal-stopped")))
}

// signIn signs sub in with the development sign-in form on web, the
// public host, and waits for the dashboard.
// The form's own submission is a navigation too: one that ends on
// Chromium's error page (the host's network changed) is signed in again.
func signIn(web, sub string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for attempt := 1; ; attempt++ {
			err := chromedp.Run(ctx,
				navigate(web+"/"),
				chromedp.WaitVisible(`#sub`, chromedp.ByID),
				chromedp.SetValue(`#sub`, sub, chromedp.ByID),
				chromedp.Click(`button[type=submit]`, chromedp.ByQuery),
				waitJS(`!!document.getElementById("launch") || location.href.startsWith("chrome-error:")`),
			)
			var at string
			if err == nil {
				err = chromedp.Location(&at).Do(ctx)
			}
			if err != nil {
				return err
			}
			if !strings.HasPrefix(at, "chrome-error:") {
				return chromedp.WaitVisible(`#launch`, chromedp.ByID).Do(ctx)
			}
			if attempt == 3 {
				return fmt.Errorf("signing in ended on Chromium's error page %d times", attempt)
			}
		}
	})
}

// waitText waits until the element's text contains want. An error (the
// page is being replaced: "No node with given id") counts as not yet.
func waitText(sel, want string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var text string
		var err error
		for {
			if err = chromedp.Run(ctx, chromedp.Text(sel, &text, chromedp.ByQuery)); err == nil && strings.Contains(text, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s never showed %q (last: %q, %v): %w", sel, want, text, err, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// focusTerminal clicks into the terminal, again while the page is still
// settling (a node found a moment before a re-render is gone by the click).
func focusTerminal() chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		for range 50 {
			if err = chromedp.Run(ctx, chromedp.Click(`.terminal`, chromedp.ByQuery)); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		return fmt.Errorf("click into the terminal: %w", err)
	})
}

// waitLine waits until a line of the element's text is want (the
// terminal pads lines with spaces).
func waitLine(sel, want string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var text string
		for {
			if err := chromedp.Run(ctx, chromedp.Text(sel, &text, chromedp.ByQuery)); err != nil {
				text = "" // the page is being replaced: not yet
			}
			text = strings.ReplaceAll(text, "\u00a0", " ") // the emulator's spaces
			for _, line := range strings.Split(text, "\n") {
				if strings.TrimRight(line, " ") == want {
					return nil
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s never showed the line %q (last: %q): %w", sel, want, strings.Join(strings.Fields(text), " "), ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// waitLocation waits until the page is at url.
func waitLocation(url string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for {
			var at string
			if err := chromedp.Run(ctx, chromedp.Location(&at)); err == nil && at == url {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("never reached %s: %w", url, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// TestBrowserSubdomainHandshake: in subdomain mode a person signs in on
// the public host, presses Launch workspace and lands in the workspace on
// its own host: Chromium follows the handshake (the public host, the
// ticket, the workspace host's own cookie) without a click more, and the
// session cookie never goes to the workspace's host.
func TestBrowserSubdomainHandshake(t *testing.T) {
	s := newStack(t, "BERTH_ROUTING_MODE=subdomain", "BERTH_DOMAIN=berth.test", "BERTH_PUBLIC_URL=http://berth.test:{port}",
		"BERTH_DEFAULT_IMAGE=berth/workspace-demo:latest")
	ctx, shots := browser(t, chromedp.Flag("host-resolver-rules", "MAP berth.test 127.0.0.1, MAP *.berth.test 127.0.0.1"))
	admin := s.token("root", "admin")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	_, port, _ := strings.Cut(s.web, ":")
	web := "http://berth.test:" + port
	until(t, 15*time.Second, "the dashboard on the public host", func() bool {
		code, _, _ := call(t, "GET", "http://"+s.web+"/ui/signin", "", nil, "Host", "berth.test:"+port)
		return code == 200
	})
	run := steps(t, ctx, shots)
	run("sign in", signIn(web, "alice"))
	aliceURL := "http://alice.berth.test:" + port + "/"
	var heading string
	run("launch lands in the workspace on its own host",
		chromedp.Click(`#launch`, chromedp.ByID),
		waitLocation(aliceURL),
		waitText(`h1`, "Workspace alice"),
		chromedp.Text(`h1`, &heading, chromedp.ByQuery),
		shot(shots, "subdomain-workspace"),
	)
	require.Equal(t, "Workspace alice", heading)
	// What the browser holds for the workspace's host: its own access
	// cookie, never the session.
	var cookies []*network.Cookie
	run("cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{aliceURL, web + "/"}).Do(ctx)
		return err
	}))
	byName := map[string]*network.Cookie{}
	for _, c := range cookies {
		byName[c.Name] = c
	}
	require.Contains(t, byName, "berth_ws")
	require.Contains(t, byName, "berth_session")
	require.Equal(t, "alice.berth.test", byName["berth_ws"].Domain, "host-only on the workspace's host")
	require.Equal(t, "berth.test", byName["berth_session"].Domain, "host-only on the public host")
	require.False(t, strings.HasPrefix(byName["berth_session"].Domain, "."), "not a domain cookie")
	// The workspace's page cannot reach the API on its own origin.
	var answer string
	run("the workspace's page calls /api/ on its origin",
		chromedp.Evaluate(`fetch("/api/v1/me").then(r => String(r.status))`, &answer, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	require.NotEqual(t, "200", answer, "the API answered on a workspace's host")
}

// TestBrowserSubdomainTLSCookies: behind TLS (an https public URL) the
// session cookie is __Host-berth_session, which Chromium itself refuses to
// let a workspace host set or shadow: a workspace page that writes bob's
// session for the parent domain, under either name, does not change who
// alice is on the public host.
func TestBrowserSubdomainTLSCookies(t *testing.T) {
	s := newStack(t, "BERTH_ROUTING_MODE=subdomain", "BERTH_DOMAIN=berth.test", "BERTH_PUBLIC_URL=https://berth.test:{port}",
		"BERTH_DEFAULT_IMAGE=berth/workspace-demo:latest")
	ctx, shots := browser(t, chromedp.Flag("host-resolver-rules", "MAP berth.test 127.0.0.1, MAP *.berth.test 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors", true))
	admin := s.token("root", "admin")
	status, b, _ := call(t, "POST", "http://"+s.api+"/api/v1/images", admin, map[string]any{"ref": "berth/workspace-demo:latest"})
	require.Equal(t, 201, status, "%s", b)
	_, port, _ := strings.Cut(s.web, ":")
	web := "https://berth.test:" + port
	// Traefik's default certificate is router-sync's self-signed one.
	tlsClient := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test's own certificate
	publicHost := func(method, path string, body io.Reader, headers ...string) *http.Response {
		req, err := http.NewRequest(method, "https://"+s.web+path, body)
		require.NoError(t, err)
		req.Host = "berth.test:" + port
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		res, err := tlsClient.Do(req)
		if err != nil {
			return nil
		}
		_ = res.Body.Close()
		return res
	}
	until(t, 15*time.Second, "the dashboard on the public host over TLS", func() bool {
		res := publicHost("GET", "/ui/signin", nil)
		return res != nil && res.StatusCode == 200
	})
	// Bob's session: what a hostile workspace owner knows of his own.
	res := publicHost("POST", "/ui/signin/dev", strings.NewReader("sub=bob&role=user"),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", web)
	require.NotNil(t, res)
	var bobSession string
	for _, c := range res.Cookies() {
		if c.Name == "__Host-berth_session" {
			bobSession = c.Value
			require.True(t, c.Secure, "the session cookie is Secure")
			require.Empty(t, c.Domain, "the session cookie is host-only")
		}
	}
	require.NotEmpty(t, bobSession, "dev sign-in over TLS sets __Host-berth_session (status %d)", res.StatusCode)

	run := steps(t, ctx, shots)
	run("sign in", signIn(web, "alice"))
	aliceURL := "https://alice.berth.test:" + port + "/"
	run("launch lands in the workspace on its own host",
		chromedp.Click(`#launch`, chromedp.ByID),
		waitLocation(aliceURL),
		waitText(`h1`, "Workspace alice"),
		shot(shots, "tls-workspace"),
	)
	cookiesOf := func(urls ...string) map[string][]*network.Cookie {
		var cookies []*network.Cookie
		run("cookies", chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			cookies, err = network.GetCookies().WithURLs(urls).Do(ctx)
			return err
		}))
		byName := map[string][]*network.Cookie{}
		for _, c := range cookies {
			byName[c.Name] = append(byName[c.Name], c)
		}
		return byName
	}
	before := cookiesOf(web + "/")
	require.Len(t, before["__Host-berth_session"], 1)
	aliceSession := before["__Host-berth_session"][0]
	require.True(t, aliceSession.Secure && aliceSession.HTTPOnly)
	require.Equal(t, "berth.test", aliceSession.Domain)
	require.NotContains(t, before, "berth_session", "no unprefixed session cookie under TLS")
	ws := cookiesOf(aliceURL)
	require.Len(t, ws["__Host-berth_ws"], 1, "the workspace host's access cookie is __Host- too")
	require.Equal(t, "alice.berth.test", ws["__Host-berth_ws"][0].Domain)
	require.NotContains(t, ws, "__Host-berth_session", "the session never goes to the workspace's host")

	// The workspace's page tosses bob's session at the parent domain.
	var seen string
	run("the workspace's page sets cookies for the parent domain",
		chromedp.Evaluate(fmt.Sprintf(`document.cookie = "__Host-berth_session=%[1]s; Domain=berth.test; Path=/; Secure";
			document.cookie = "berth_session=%[1]s; Domain=berth.test; Path=/; Secure";
			document.cookie`, bobSession), &seen))
	require.NotContains(t, seen, "__Host-berth_session", "Chromium refused the __Host- cookie with a Domain")
	after := cookiesOf(web + "/")
	require.Len(t, after["__Host-berth_session"], 1, "the tossed __Host- cookie was not stored")
	require.Equal(t, aliceSession.Value, after["__Host-berth_session"][0].Value)
	require.Len(t, after["berth_session"], 1, "the unprefixed name is a cookie Chromium lets a sibling set")
	var me string
	run("alice is still alice on the public host",
		navigate(web+"/"),
		chromedp.WaitVisible(`#launch`, chromedp.ByID),
		chromedp.Evaluate(`fetch("/api/v1/me").then(r => r.json()).then(j => j.sub)`, &me,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	)
	require.Equal(t, "alice", me, "a tossed cookie changed who the next request is")
}
