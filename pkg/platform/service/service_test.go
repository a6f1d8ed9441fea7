package service

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

var quiet = slog.New(slog.DiscardHandler)

func TestRunStopsAllWhenOneFails(t *testing.T) {
	stopped := make(chan string, 2)
	waiter := func(name string) Actor {
		return Actor{Name: name, Run: func(ctx context.Context) error {
			<-ctx.Done()
			stopped <- name
			return nil
		}}
	}
	boom := errors.New("boom")
	err := Run(context.Background(), quiet, time.Second,
		waiter("a"), Actor{Name: "failing", Run: func(context.Context) error { return boom }}, waiter("b"))
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d of 2 actors were stopped", len(stopped))
	}
}

func TestRunShutdownHasADeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stuck := Actor{Name: "stuck", Run: func(context.Context) error { select {} }}
	start := time.Now()
	err := Run(ctx, quiet, 100*time.Millisecond, stuck)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("stuck actor must not hang shutdown: err=%v after %s", err, time.Since(start))
	}
}

func TestHTTPServerGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.WriteHeader(http.StatusTeapot)
	})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, quiet, 5*time.Second, HTTPServer("http", srv, ln, 5*time.Second)) }()
	got := make(chan int, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			got <- 0
			return
		}
		res.Body.Close()
		got <- res.StatusCode
	}()
	time.Sleep(100 * time.Millisecond)
	cancel() // shutdown starts while a request is in flight
	time.Sleep(50 * time.Millisecond)
	close(release)
	if s := <-got; s != http.StatusTeapot {
		t.Fatalf("in-flight request got %d", s)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHealth(t *testing.T) {
	h := NewHealth(map[string]Check{
		"ok":  func(context.Context) error { return nil },
		"bus": func(context.Context) error { return errors.New("nats disconnected") },
	})
	rec := httptest.NewRecorder()
	h.Ready(rec, httptest.NewRequest("GET", "/readyz", nil))
	var body struct {
		Status  string            `json:"status"`
		Failing map[string]string `json:"failing"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || body.Failing["bus"] != "nats disconnected" || len(body.Failing) != 1 {
		t.Fatalf("readyz: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.Live(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("healthz: %d", rec.Code)
	}
}

// TestSupervisedRestartsAFailingActor: an actor that fails (the bus refused
// it) is started again with backoff while the others keep running; the
// service stops only when asked.
func TestSupervisedRestartsAFailingActor(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runs := make(chan int, 10)
	n := 0
	flaky := Supervised(quiet, Actor{Name: "flaky", Run: func(ctx context.Context) error {
		n++
		runs <- n
		if n < 3 {
			return errors.New("nats: maximum consumers limit reached")
		}
		<-ctx.Done()
		return nil
	}})
	done := make(chan error, 1)
	go func() { done <- Run(ctx, quiet, time.Second, flaky) }()
	for want := 1; want <= 3; want++ {
		select {
		case got := <-runs:
			if got != want {
				t.Fatalf("run %d, want %d", got, want)
			}
		case err := <-done:
			t.Fatalf("service exited after a failing run: %v", err)
		case <-time.After(5 * time.Second):
			t.Fatalf("run %d never started", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("clean stop: %v", err)
	}
}
