package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit/redistest"
	"github.com/parleyhq/parley/pipeline/session"
)

// Two replicas behind a real nginx, 300 sessions spread over them by its
// round robin. One replica is drained (SIGTERM) while some of its clients
// have a reply streaming: each of its clients is told to reconnect, waits
// the delay it was given (spread over the default 2 s), comes back through
// nginx, which sends it to the other replica, and resumes. Nobody is
// refused, no socket ends without being told, each client's events are
// exactly its session's log (none lost, none twice, one reply.done a
// turn), and every client's next turn is answered.
func TestDrainBehindNginx(t *testing.T) {
	bin := nginxBin(t)
	rdb := redistest.Start(t)
	// The defaults, but what two replicas need: one Redis that both share
	// (the default is an in-process Redis of each replica's own) and a
	// listen address each (the default 127.0.0.1:8080 would be one for
	// both). The drained replica's offline responder waits between words
	// (it answers at once by default) so that replies are still streaming
	// when SIGTERM lands: their ends reach the clients after they resumed
	// on the other replica, through the session log.
	a := startDefaultProc(t, "REDIS_URL="+rdb.URL(), "PARLEY_LOCAL_DELAY=150ms")
	b := startDefaultProc(t, "REDIS_URL="+rdb.URL())
	proxy := startNginx(t, bin, a.addr, b.addr)
	var refused refusals

	const sessions, inFlight = 300, 12
	clients := connectAll(t, proxy.url(), sessions, &refused)
	onA, onB := splitByReplica(t, clients, a.addr, b.addr)
	if len(onA) < sessions/3 || len(onB) < sessions/3 {
		t.Fatalf("nginx's round robin put %d sessions on the drained replica and %d on the other", len(onA), len(onB))
	}
	startReplies(t, onA[:inFlight])

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }() // ends when the drained replica exits
	var wg sync.WaitGroup
	for i, c := range onA {
		wg.Add(1)
		go func() { // ends when the client's turn after its resume is answered
			defer wg.Done()
			if err := c.throughDrain(i < inFlight); err != nil {
				t.Errorf("session %s (was on the drained replica): %v", c.session, err)
			}
		}()
	}
	if err := <-exited; err != nil {
		t.Errorf("the drained replica exited with %v\n%s", err, a.log)
	}
	for _, c := range onB {
		wg.Add(1)
		go func() { // ends when the client's turn is answered
			defer wg.Done()
			if err := c.nextTurn(); err != nil {
				t.Errorf("session %s (on the other replica): %v", c.session, err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.Logf("nginx error log:\n%s", proxy.errorLog())
		t.FailNow()
	}

	refused.check(t)
	checkDrained(t, onA, onB, b.addr, inFlight)
	store := session.NewStore(rdb.Client(), session.Config{})
	for _, c := range clients {
		checkAgainstLog(t, store, c)
	}
	// The path under test: nginx tried the drained replica for some of
	// the reconnects, found its listener closed, and sent them on.
	if n := proxy.refusedUpstream(); n == 0 {
		t.Errorf("nginx never found the drained replica closed; its error log:\n%s", proxy.errorLog())
	}
	t.Logf("%d sessions on the drained replica, %d on the other", len(onA), len(onB))
}

// proxyEvent is any server message, as the proxied client reads it.
type proxyEvent struct {
	Type, ID, Session, Token, Code, Message, Text string
	Turn                                          int64
	Resumed                                       bool
	RetryAfterMs                                  int64 `json:"retry_after_ms"`
}

// proxied behaves as a good client behind a proxy does. Told to reconnect,
// it waits retry_after_ms, dials again (the proxy picks a replica) and
// resumes with its session, token and last_event. A refused dial is tried
// again after a jittered, growing backoff (at least Retry-After). A socket
// that ends without being told is resumed at once, and counted.
type proxied struct {
	url      string
	refused  *refusals
	ws       *websocket.Conn
	upstream string // the replica of the socket, from nginx's X-Parley-Upstream header

	session, token, last string
	events               []proxyEvent // every stored event received (those with an id), in order
	resumedAt            []int        // len(events) at each resume
	told                 []int64      // retry_after_ms of each reconnect event
	closes               []string     // the close frames after reconnect events
	drops                int          // sockets that ended without a reconnect event
}

// refusals counts what the proxy or a replica refused, by HTTP status, and
// the dials that failed without one.
type refusals struct {
	mu       sync.Mutex
	byStatus map[int]int
	failed   []string
}

func (r *refusals) add(resp *http.Response, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if resp == nil {
		r.failed = append(r.failed, err.Error())
		return
	}
	if r.byStatus == nil {
		r.byStatus = map[int]int{}
	}
	r.byStatus[resp.StatusCode]++
}

func (r *refusals) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byStatus) > 0 || len(r.failed) > 0 {
		t.Errorf("dials refused, by status: %v; failed without an answer: %d %q", r.byStatus, len(r.failed), r.failed)
	}
}

// dial opens a socket, retrying refusals with backoff for up to 30 s.
func (c *proxied) dial() error {
	backoff := 100 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, resp, err := websocket.DefaultDialer.Dial(c.url, nil)
		if err == nil {
			c.ws, c.upstream = ws, resp.Header.Get("X-Parley-Upstream")
			return nil
		}
		c.refused.add(resp, err)
		if time.Now().After(deadline) {
			return fmt.Errorf("still refused after 30 s: %v", err)
		}
		// Full jitter: a random part of a doubling window, so that the
		// refused do not all come back together; at least Retry-After.
		wait := rand.N(backoff)
		if resp != nil {
			var secs int
			if _, err := fmt.Sscan(resp.Header.Get("Retry-After"), &secs); err == nil {
				wait = max(wait, time.Duration(secs)*time.Second)
			}
		}
		time.Sleep(wait)
		backoff = min(2*backoff, 5*time.Second)
	}
}

// hello starts the session, or resumes it once it has one.
func (c *proxied) hello() error {
	msg := map[string]any{"type": "hello"}
	if c.session != "" {
		msg = map[string]any{"type": "hello", "session": c.session, "token": c.token, "last_event": c.last}
	}
	if err := c.send(msg); err != nil {
		return err
	}
	var ev proxyEvent
	_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	if err := c.ws.ReadJSON(&ev); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if ev.Type != "session" || ev.Resumed != (c.session != "") {
		return fmt.Errorf("hello (resuming: %v): %+v", c.session != "", ev)
	}
	c.session, c.token = ev.Session, ev.Token
	return nil
}

func (c *proxied) send(v any) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteJSON(v)
}

// next returns the session's next event. A reconnect event is returned
// once the client has resumed, on whichever replica the proxy chose.
func (c *proxied) next(timeout time.Duration) (proxyEvent, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(timeout))
	var ev proxyEvent
	err := c.ws.ReadJSON(&ev)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return ev, fmt.Errorf("no event in %v", timeout)
	case err != nil:
		ended := err
		c.drops++
		c.ws.Close()
		if err := c.resume(); err != nil {
			return ev, fmt.Errorf("the socket ended untold (%v), and the resume failed: %w", ended, err)
		}
		return c.next(timeout)
	}
	if ev.ID != "" {
		c.events = append(c.events, ev)
		c.last = ev.ID
	}
	if ev.Type == "reconnect" {
		c.told = append(c.told, ev.RetryAfterMs)
		return ev, c.reconnect(time.Duration(ev.RetryAfterMs) * time.Millisecond)
	}
	return ev, nil
}

// reconnect reads the close frame that follows a reconnect event, waits
// the delay it was told, and resumes through the proxy.
func (c *proxied) reconnect(wait time.Duration) error {
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.ws.ReadMessage()
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.closes = append(c.closes, fmt.Sprintf("%d %s", ce.Code, ce.Text))
	} else {
		c.closes = append(c.closes, fmt.Sprintf("no close frame: %v", err))
	}
	c.ws.Close()
	time.Sleep(wait)
	return c.resume()
}

func (c *proxied) resume() error {
	if err := c.dial(); err != nil {
		return err
	}
	c.resumedAt = append(c.resumedAt, len(c.events))
	return c.hello()
}

// turn sends a typed turn and reads until its reply.done; a turn refused
// at once (busy, rate_limited: not stored) is sent again after
// retry_after_ms.
func (c *proxied) turn(text string) error {
	for {
		if err := c.send(map[string]any{"type": "text", "text": text}); err != nil {
			return err
		}
		ev, err := c.untilTurnEnds(0)
		if err != nil {
			return err
		}
		if ev.Type == "reply.done" {
			return nil
		}
		time.Sleep(time.Duration(ev.RetryAfterMs) * time.Millisecond)
	}
}

// untilTurnEnds reads until the reply.done of turn (0: of the turn the
// next transcript starts), or a refusal of the turn sent.
func (c *proxied) untilTurnEnds(turn int64) (proxyEvent, error) {
	for {
		ev, err := c.next(30 * time.Second)
		switch {
		case err != nil:
			return ev, err
		case ev.Type == "transcript" && turn == 0:
			turn = ev.Turn
		case ev.Type == "reply.done" && ev.Turn == turn:
			return ev, nil
		case ev.Type == "error" && ev.Turn == 0 && (ev.Code == "busy" || ev.Code == "rate_limited"):
			return ev, nil
		case ev.Type == "error":
			return ev, fmt.Errorf("error: %+v", ev)
		}
	}
}

// throughDrain is what a client of the drained replica lives through: the
// rest of its reply in flight, if any, the reconnect, then a new turn.
func (c *proxied) throughDrain(inFlight bool) error {
	if inFlight {
		if _, err := c.untilTurnEnds(1); err != nil {
			return err
		}
	}
	for len(c.told) == 0 {
		if _, err := c.next(30 * time.Second); err != nil {
			return fmt.Errorf("waiting for the reconnect event: %w", err)
		}
	}
	return c.nextTurn()
}

func (c *proxied) nextTurn() error { return c.turn("what time is it") }

// connectAll opens n sessions through the proxy, 50 dials at a time.
func connectAll(t *testing.T, url string, n int, refused *refusals) []*proxied {
	t.Helper()
	clients := make([]*proxied, n)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &proxied{url: url, refused: refused}
		wg.Add(1)
		sem <- struct{}{}
		go func() { // ends when the session has said hello
			defer wg.Done()
			defer func() { <-sem }()
			c := clients[i]
			if err := c.dial(); err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			t.Cleanup(func() { c.ws.Close() })
			if err := c.hello(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return clients
}

func splitByReplica(t *testing.T, clients []*proxied, a, b string) (onA, onB []*proxied) {
	t.Helper()
	for _, c := range clients {
		switch c.upstream {
		case a:
			onA = append(onA, c)
		case b:
			onB = append(onB, c)
		default:
			t.Fatalf("X-Parley-Upstream %q is neither replica (%s, %s)", c.upstream, a, b)
		}
	}
	return onA, onB
}

// startReplies sends each client a turn and returns once each reply has
// begun to stream.
func startReplies(t *testing.T, clients []*proxied) {
	t.Helper()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { // ends at the reply's first delta
			defer wg.Done()
			if err := c.send(map[string]any{"type": "text", "text": "tell me a long story"}); err != nil {
				t.Error(err)
				return
			}
			for {
				ev, err := c.next(20 * time.Second)
				if err != nil || ev.Type == "error" || ev.Type == "reply.done" {
					t.Errorf("before the drain, want a reply streaming: %+v %v", ev, err)
					return
				}
				if ev.Type == "reply.delta" {
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// checkDrained: every client of the drained replica was told once, with a
// delay within the default spread, closed with 1012 and resumed on the
// other replica; the replies in flight ended there; the other replica's
// clients were not disturbed.
func checkDrained(t *testing.T, onA, onB []*proxied, b string, inFlight int) {
	t.Helper()
	var delays []int64
	for i, c := range onA {
		if len(c.told) != 1 || c.drops != 0 || len(c.closes) != 1 || c.closes[0] != "1012 shutdown" {
			t.Errorf("session %s: told to reconnect %d times, %d sockets ended untold, closes %q", c.session, len(c.told), c.drops, c.closes)
			continue
		}
		if !strings.HasSuffix(c.upstream, b) {
			t.Errorf("session %s resumed on %q, not on the other replica %s", c.session, c.upstream, b)
		}
		if i < inFlight && !slices.ContainsFunc(c.events[c.resumedAt[0]:], func(ev proxyEvent) bool { return ev.Type == "reply.done" && ev.Turn == 1 }) {
			t.Errorf("session %s: its reply was not in flight at the drain (reply.done before the reconnect)", c.session)
		}
		delays = append(delays, c.told[0])
	}
	for _, c := range onB {
		if len(c.told) != 0 || c.drops != 0 {
			t.Errorf("session %s of the other replica: told to reconnect %d times, %d drops", c.session, len(c.told), c.drops)
		}
	}
	if len(delays) == 0 {
		return
	}
	lo, hi := slices.Min(delays), slices.Max(delays)
	if lo < 0 || hi >= 2000 || hi-lo < 1000 {
		t.Errorf("retry_after_ms from %d to %d: want them spread over [0, 2000)", lo, hi)
	}
}

// checkAgainstLog: the client received its session's log exactly, in order
// (ids strictly increasing, nothing missing or twice), with one reply.done
// per turn.
func checkAgainstLog(t *testing.T, store *session.Store, c *proxied) {
	t.Helper()
	stored, err := store.Range(context.Background(), c.session, "0", 100000)
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	dones := map[int64]int{}
	turns := int64(0)
	for _, e := range stored {
		var ev proxyEvent
		if err := json.Unmarshal(e.Wire, &ev); err != nil {
			t.Fatalf("stored event %s: %v", e.ID, err)
		}
		want = append(want, ev.ID+" "+ev.Type)
		if ev.Type == "reply.done" {
			dones[ev.Turn]++
		}
		turns = max(turns, ev.Turn)
	}
	for i, ev := range c.events {
		got = append(got, ev.ID+" "+ev.Type)
		if i > 0 && session.CompareIDs(ev.ID, c.events[i-1].ID) <= 0 {
			t.Errorf("session %s: event %s after %s", c.session, ev.ID, c.events[i-1].ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("session %s: received\n%q\nthe log is\n%q", c.session, got, want)
	}
	for turn := int64(1); turn <= turns; turn++ {
		if dones[turn] != 1 {
			t.Errorf("session %s: %d reply.done for turn %d", c.session, dones[turn], turn)
		}
	}
}

// nginxProc is an nginx in the foreground, its files in a temp dir.
type nginxProc struct {
	addr, dir string
	cmd       *exec.Cmd
	out       bytes.Buffer
}

func (n *nginxProc) url() string { return "ws://" + n.addr + "/ws" }

// nginxBin finds nginx: on PATH, or where Debian installs it (/usr/sbin,
// which a user's PATH may lack).
func nginxBin(t *testing.T) string {
	t.Helper()
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	t.Fatal("nginx is not on PATH: `make deps` installs it (Debian's nginx package)")
	return ""
}

// nginxConf proxies /ws (and the rest) to the replicas as a deployment
// would: WebSocket upgrades passed through, idle sockets kept longer than
// the 30 s ping interval, the client's address in X-Forwarded-For. The
// upstream that served a request is sent back as X-Parley-Upstream (for
// the test). proxy_next_upstream is left at its default, "error
// timeout": a replica that refuses the connection (its listener closed) or
// is gone is skipped for the next one; a replica's HTTP answer, 503 too,
// would be passed to the client.
const nginxConf = `daemon off;
%s
worker_processes 1;
worker_rlimit_nofile 4096;
pid "%[2]s/nginx.pid";
error_log "%[2]s/error.log" notice;
events { worker_connections 2048; }
http {
	access_log "%[2]s/access.log";
	client_body_temp_path "%[2]s/body";
	proxy_temp_path "%[2]s/proxy";
	fastcgi_temp_path "%[2]s/fastcgi";
	uwsgi_temp_path "%[2]s/uwsgi";
	scgi_temp_path "%[2]s/scgi";
	map $http_upgrade $connection_upgrade {
		default upgrade;
		'' close;
	}
	upstream parley {
		server %[3]s;
		server %[4]s;
	}
	server {
		listen %[5]s;
		location / {
			proxy_pass http://parley;
			proxy_http_version 1.1;
			proxy_set_header Upgrade $http_upgrade;
			proxy_set_header Connection $connection_upgrade;
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_read_timeout 120s;
			proxy_send_timeout 120s;
			add_header X-Parley-Upstream $upstream_addr always;
		}
	}
}
`

// startNginx runs nginx in front of the replicas until the test ends.
func startNginx(t *testing.T, bin string, replicas ...string) *nginxProc {
	t.Helper()
	n := &nginxProc{addr: freeAddr(t), dir: t.TempDir()}
	// As root, nginx's workers would switch to "nobody"; they run as the
	// test's own user instead (a non-root nginx ignores the directive).
	userLine := ""
	if os.Geteuid() == 0 {
		if u, err := user.Current(); err == nil {
			userLine = "user " + u.Username + ";"
		}
	}
	conf := filepath.Join(n.dir, "nginx.conf")
	body := fmt.Sprintf(nginxConf, userLine, n.dir, replicas[0], replicas[1], n.addr)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: errors before the configuration is read go there too, not to the
	// packaged log path.
	n.cmd = exec.Command(bin, "-p", n.dir, "-c", conf, "-e", filepath.Join(n.dir, "error.log"))
	n.cmd.Stdout, n.cmd.Stderr = &n.out, &n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	t.Cleanup(n.stop)
	n.waitUp(t)
	return n
}

// waitUp waits until nginx answers /healthz from a replica.
func (n *nginxProc) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + n.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not answer on %s: %v\n%s", n.addr, err, n.errorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends nginx (SIGTERM: its fast shutdown), or kills it after 10 s.
func (n *nginxProc) stop() {
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }() // ends when nginx has exited
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
}

func (n *nginxProc) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	return string(b)
}

// refusedUpstream counts the connections to an upstream that failed (and
// that nginx then tried on the next one).
func (n *nginxProc) refusedUpstream() int {
	return strings.Count(n.errorLog(), "connect() failed")
}
