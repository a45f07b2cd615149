package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The defaults are the product: the parley binary, started with no
// settings at all (the embedded Redis, the offline responder, no caps),
// answers 300 users who connect at once from one address and each send a
// turn at the same moment. Each gets its own reply.done: no busy, no
// refusal.
func TestDefaultsServe300ConcurrentUsers(t *testing.T) {
	const users = 300
	addr := freeAddr(t)
	cmd := exec.Command(buildParley(t))
	// Nothing but the listen address, which a test must choose to get a
	// free port (the default 127.0.0.1:8080 may be taken). Settings in the
	// test's own environment are dropped, so that every other one is its
	// default.
	cmd.Env = append(withoutSettings(os.Environ()), "PARLEY_ADDR="+addr)
	var log bytes.Buffer // read once the process has ended
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() { // the warnings and errors; info has a line per socket
			for _, l := range strings.Split(log.String(), "\n") {
				if !strings.Contains(l, "level=INFO") && !strings.Contains(l, "level=DEBUG") {
					t.Log(l)
				}
			}
		}
	})
	waitReady(t, addr, 200)

	start := make(chan struct{})
	errs := make(chan error, users)
	var connected, wg sync.WaitGroup
	connected.Add(users)
	for i := 0; i < users; i++ {
		wg.Add(1)
		go func() { // ends when this user has its reply, or fails
			defer wg.Done()
			errs <- oneUser(addr, i, &connected, start)
		}()
	}
	connected.Wait() // every user has its session
	t0 := time.Now()
	close(start) // and all send their turn at once
	wg.Wait()
	t.Logf("%d turns sent at once, all answered or failed in %v", users, time.Since(t0).Round(time.Millisecond))
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			if failed++; failed <= 5 {
				t.Error(err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d users got no reply", failed, users)
	}
}

// oneUser connects, says hello, waits for start, sends a text turn of its
// own and reads until that turn's reply.done, which must echo its text.
func oneUser(addr string, i int, connected *sync.WaitGroup, start <-chan struct{}) error {
	done := sync.OnceFunc(connected.Done)
	defer done()
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second}
	ws, resp, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return fmt.Errorf("user %d: dial: %v (HTTP %d)", i, err, status)
	}
	defer ws.Close()
	var ev wsEvent
	read := func() error {
		_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		ev = wsEvent{}
		return ws.ReadJSON(&ev)
	}
	if err := ws.WriteJSON(map[string]any{"type": "hello"}); err != nil {
		return fmt.Errorf("user %d: hello: %v", i, err)
	}
	if err := read(); err != nil || ev.Type != "session" {
		return fmt.Errorf("user %d: after hello: %+v %v", i, ev, err)
	}
	done()
	<-start
	text := fmt.Sprintf("user %d is here", i)
	if err := ws.WriteJSON(map[string]any{"type": "text", "text": text}); err != nil {
		return fmt.Errorf("user %d: send: %v", i, err)
	}
	for {
		if err := read(); err != nil {
			return fmt.Errorf("user %d: waiting for the reply: %v", i, err)
		}
		switch ev.Type {
		case "error":
			return fmt.Errorf("user %d: error %s: %s", i, ev.Code, ev.Message)
		case "reply.done":
			if ev.Turn != 1 || !strings.Contains(ev.Text, fmt.Sprintf("%q", text)) {
				return fmt.Errorf("user %d: reply.done %+v: not the reply to %q", i, ev, text)
			}
			return nil
		}
	}
}

// buildParley builds the binary a user runs: go build, with the test's
// build tags but without the race detector. Under it the embedded Redis's
// Lua interpreter is 5 to 10 times slower, and on a loaded machine 300
// turns took close to the 10 s that a turn may wait for a slot; the test
// is about what a newcomer gets. The race detector sees the same code in
// the other tests, which run the test binary itself.
func buildParley(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own go first on PATH
	if err != nil {
		t.Fatal(err)
	}
	tags := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" {
				tags = s.Value
			}
		}
	}
	bin := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command(goTool, "build", "-tags="+tags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// withoutSettings drops Parley's settings (PARLEY_*, REDIS_URL, LLM_*)
// from an environment.
func withoutSettings(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "PARLEY_") || strings.HasPrefix(kv, "REDIS_URL=") || strings.HasPrefix(kv, "LLM_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
