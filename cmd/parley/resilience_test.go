package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/internal/testkit/wsclient"
	"github.com/parleyhq/parley/pipeline/session"
)

// TestMain lets the test binary be the parley binary (started with no
// arguments and configured by the environment), so that tests can signal
// and kill a real process.
func TestMain(m *testing.M) {
	if os.Getenv("PARLEY_TEST_SERVE") == "1" {
		main() // the real one: signals, drain, exit status
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replicaProc is a parley server in its own process.
type replicaProc struct {
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// startProc starts a parley process for the resilience tests: text only
// (no speech model to load), warnings only, no per-session turn rate.
func startProc(t *testing.T, env ...string) *replicaProc {
	t.Helper()
	return startDefaultProc(t, append([]string{"PARLEY_ASR=off", "PARLEY_LOG_LEVEL=warn", "PARLEY_RATE_SESSION=0"}, env...)...)
}

// startDefaultProc starts a parley process with every default but its
// listen address and env.
func startDefaultProc(t *testing.T, env ...string) *replicaProc {
	t.Helper()
	p := &replicaProc{addr: freeAddr(t), log: &bytes.Buffer{}}
	p.cmd = exec.Command(os.Args[0])
	p.cmd.Env = append(os.Environ(), append([]string{"PARLEY_TEST_SERVE=1", "PARLEY_ADDR=" + p.addr}, env...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	})
	waitReady(t, p.addr, 200)
	return p
}

// waitReady polls /readyz until it answers want (200, or 503).
func waitReady(t *testing.T, addr string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz on %s never answered %d (last: %v %v)", addr, want, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slowModel is a fake OpenAI chat upstream that streams a numbered story,
// a word every 100 ms.
func slowModel(t *testing.T, words int) (url, story string) {
	var parts []string
	for i := 1; i <= words; i++ {
		parts = append(parts, fmt.Sprintf("w%d ", i))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for _, p := range parts {
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", p)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", strings.Join(parts, "")
}

// wsEvent is a server message, as the test kit's client reads it.
type wsEvent = wsclient.Msg

// dialWS opens a Parley socket on the server at addr.
func dialWS(t *testing.T, addr string) *wsclient.Client { return wsclient.Dial(t, "ws://"+addr+"/ws") }

// A replica is killed (SIGKILL) mid-reply with two others running: the
// client resumes on another replica and gets every event once, in order;
// the turn is answered by another replica, exactly once.
func TestKilledReplicaProcess(t *testing.T) {
	rdb := redistest.Start(t)
	model, story := slowModel(t, 20)
	env := []string{"REDIS_URL=" + rdb.URL(), "LLM_BASE_URL=" + model, "LLM_MODEL=m", "PARLEY_CLAIM_AFTER=1s"}
	a := startProc(t, append(env, "PARLEY_REPLICA_ID=a")...)
	b := startProc(t, append(env, "PARLEY_REPLICA_ID=b")...)
	c := startProc(t, append(env, "PARLEY_REPLICA_ID=c")...)

	cl := dialWS(t, a.addr)
	cl.Send(map[string]any{"type": "hello"})
	s := cl.NextWithin(10 * time.Second)
	cl.Send(map[string]any{"type": "text", "text": "tell me a story"})
	deltas := 0
	for deltas < 3 {
		if ev := cl.NextWithin(10 * time.Second); ev.Type == "reply.delta" {
			deltas++
		}
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	resumeFrom := cl.LastID

	cl2 := dialWS(t, b.addr)
	cl2.Send(map[string]any{"type": "hello", "session": s.Session, "token": s.Token, "last_event": resumeFrom})
	if ev := cl2.NextWithin(10 * time.Second); ev.Type != "session" || !ev.Resumed {
		t.Fatalf("resume: %+v", ev)
	}
	var evs []wsEvent
	for {
		ev := cl2.NextWithin(30 * time.Second)
		if ev.Type == "error" {
			t.Fatalf("error: %+v", ev)
		}
		evs = append(evs, ev)
		if ev.Type == "reply.done" {
			break
		}
	}
	done := evs[len(evs)-1]
	if done.Turn != 1 || done.Text != story {
		t.Fatalf("reply.done %+v, want the whole story", done)
	}
	prev, reset := resumeFrom, false
	for _, ev := range evs {
		if ev.ID == "" {
			continue
		}
		if session.CompareIDs(ev.ID, prev) <= 0 {
			t.Fatalf("event %s after %s: sent twice or out of order", ev.ID, prev)
		}
		prev = ev.ID
		reset = reset || ev.Reset
	}
	if !reset {
		t.Fatal("the takeover's reply did not start with reset")
	}
	// The whole log, read on the third replica: one reply.done for turn 1.
	cl3 := dialWS(t, c.addr)
	cl3.Send(map[string]any{"type": "hello", "session": s.Session, "token": s.Token, "last_event": "0"})
	cl3.NextWithin(10 * time.Second)
	cl3.Send(map[string]any{"type": "text", "text": "and then?"})
	dones := 0
	for {
		ev := cl3.NextWithin(30 * time.Second)
		if ev.Type == "reply.done" && ev.Turn == 1 {
			dones++
		}
		if ev.Type == "reply.done" && ev.Turn == 2 {
			break
		}
	}
	if dones != 1 {
		t.Fatalf("%d reply.done for the turn in flight when its replica died", dones)
	}
}

// Redis restarts (with AOF, so that it keeps what it was given) while a
// reply is being written: the server reconnects by itself and is ready
// again without a restart; a turn sent while Redis is away is answered
// with an error, not silence; the reply the model finished during the
// outage is stored once Redis is back and reaches the same socket, whole;
// the socket then goes on.
func TestRedisRestart(t *testing.T) {
	rdb := redistest.StartPersistent(t)
	model, story := slowModel(t, 20) // 2 s
	// Voice off (no decoders to load) and a short drain: the test is about
	// Redis going away under text turns.
	env := map[string]string{"PARLEY_ADDR": freeAddr(t), "REDIS_URL": rdb.URL(), "PARLEY_ASR": "off", "PARLEY_DRAIN_TIMEOUT": "2s",
		"LLM_BASE_URL": model, "LLM_MODEL": "m"}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitReady(t, cfg.Addr, 200)

	cl := dialWS(t, cfg.Addr)
	cl.Send(map[string]any{"type": "hello"})
	cl.NextWithin(10 * time.Second)
	until := func(turn int64) wsEvent {
		for {
			ev := cl.NextWithin(40 * time.Second)
			if ev.Type == "error" || ev.Type == "reply.done" && ev.Turn == turn {
				return ev
			}
		}
	}
	cl.Send(map[string]any{"type": "text", "text": "hello"})
	if ev := until(1); ev.Type != "reply.done" {
		t.Fatalf("before the restart: %+v", ev)
	}

	cl.Send(map[string]any{"type": "text", "text": "tell me a story"})
	for ev := cl.NextWithin(10 * time.Second); ev.Type != "reply.delta"; ev = cl.NextWithin(10 * time.Second) {
	}
	t0 := time.Now()
	rdb.Stop()
	waitReady(t, cfg.Addr, 503)
	cl.Send(map[string]any{"type": "text", "text": "are you there?"})
	if ev := until(0); ev.Type != "error" || ev.Code != "internal" || ev.Message == "" {
		t.Fatalf("a turn while Redis is away: %+v, want an internal error", ev)
	}
	// The model finishes its 2 s story while Redis is away.
	time.Sleep(time.Until(t0.Add(2500 * time.Millisecond)))
	rdb.Restart()
	waitReady(t, cfg.Addr, 200)
	if ev := until(2); ev.Type != "reply.done" || ev.Text != story {
		t.Fatalf("the reply finished during the outage: %+v, want the whole story", ev)
	}
	// The socket goes on; turn 3, as the turn in the gap was not stored.
	cl.Send(map[string]any{"type": "text", "text": "and now?"})
	if ev := until(3); ev.Type != "reply.done" {
		t.Fatalf("after the restart: %+v", ev)
	}
}

// SIGTERM on a real process: its clients are told to reconnect, it
// refuses new sockets, finishes the turn under way and exits 0.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	rdb := redistest.Start(t)
	model, story := slowModel(t, 10) // 1 s
	a := startProc(t, "REDIS_URL="+rdb.URL(), "LLM_BASE_URL="+model, "LLM_MODEL=m", "PARLEY_DRAIN_TIMEOUT=10s", "PARLEY_REPLICA_ID=a")
	b := startProc(t, "REDIS_URL="+rdb.URL(), "LLM_BASE_URL="+model, "LLM_MODEL=m", "PARLEY_REPLICA_ID=b")
	cl := dialWS(t, a.addr)
	cl.Send(map[string]any{"type": "hello"})
	s := cl.NextWithin(10 * time.Second)
	cl.Send(map[string]any{"type": "text", "text": "a short story"})
	for ev := cl.NextWithin(10 * time.Second); ev.Type != "reply.delta"; ev = cl.NextWithin(10 * time.Second) {
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for ev := cl.NextWithin(10 * time.Second); ev.Type != "reconnect"; ev = cl.NextWithin(10 * time.Second) {
	}
	if err := a.cmd.Wait(); err != nil {
		t.Fatalf("the drained process exited with %v\n%s", err, a.log)
	}
	cl2 := dialWS(t, b.addr)
	cl2.Send(map[string]any{"type": "hello", "session": s.Session, "token": s.Token, "last_event": cl.LastID})
	cl2.NextWithin(10 * time.Second)
	for {
		ev := cl2.NextWithin(20 * time.Second)
		if ev.Type == "reply.done" {
			if ev.Text != story || ev.Reset {
				t.Fatalf("reply.done %+v: want the story as the drained replica finished it", ev)
			}
			break
		}
		if ev.Reset {
			t.Fatalf("the turn was taken over (%+v): the drain should have finished it", ev)
		}
	}
}
