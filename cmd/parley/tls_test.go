package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/signaling/certs/certstest"
)

// syncBuf is a log the test reads while the server writes it.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// has tells whether a line of the log holds every one of parts.
func (b *syncBuf) has(parts ...string) bool {
lines:
	for _, line := range strings.Split(b.String(), "\n") {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue lines
			}
		}
		return true
	}
	return false
}

// waitFor polls cond (a hang guard, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
	}
}

// tlsFiles writes c as the server's certificate files in a new directory.
func tlsFiles(t *testing.T, c certstest.Cert) (certFile, keyFile string) {
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	c.Write(t, certFile, keyFile)
	return certFile, keyFile
}

// port is the port of a host:port address.
func port(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func httpsClient(trust ...certstest.Cert) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: certstest.ClientConfig(trust...)}}
}

func waitHTTPS(t *testing.T, c *http.Client, url string) {
	t.Helper()
	waitFor(t, url, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// serial is the serial number of the certificate a new handshake with
// addr sees.
func serial(t *testing.T, addr string, trust ...certstest.Cert) *big.Int {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, certstest.ClientConfig(trust...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber
}

// askTime sends a typed turn on ws and returns the reply.
func askTime(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	if err := ws.WriteJSON(map[string]any{"type": "text", "text": "what time is it"}); err != nil {
		t.Fatal(err)
	}
	for {
		_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		var ev map[string]any
		if err := ws.ReadJSON(&ev); err != nil {
			t.Fatal(err)
		}
		switch ev["type"] {
		case "error":
			t.Fatalf("error: %v", ev)
		case "reply.done":
			reply, _ := ev["text"].(string)
			return reply
		}
	}
}

// metric is the value of an unlabelled metric in a /metrics page; -1 if
// it is not there.
func metric(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// With -tls-cert and -tls-key the server speaks HTTPS and WSS on -addr,
// HTTP/1.1 only, and takes up a renewed certificate from its files (by
// the poll, or at once on SIGHUP) without touching open connections; a
// bad renewal is logged and the old certificate stays.
func TestTLS(t *testing.T) {
	a, b, c := certstest.New(t), certstest.New(t), certstest.New(t)
	certFile, keyFile := tlsFiles(t, a)
	env := map[string]string{
		"PARLEY_ADDR": freeAddr(t), "PARLEY_DRAIN_TIMEOUT": "2s", "PARLEY_TLS_CERT": certFile, "PARLEY_TLS_KEY": keyFile,
		"PARLEY_ASR": "off", // calls have nothing to do with TLS; saves loading pocketsphinx
	}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	client := httpsClient(a, b, c)
	base := "https://" + cfg.Addr
	waitHTTPS(t, client, base+"/readyz")
	if !strings.Contains(logs.String(), `msg="parley listening" addr=https://`+cfg.Addr) {
		t.Fatalf("the listening line does not say https://:\n%s", logs)
	}
	for _, path := range []string{"/healthz", "/metrics", "/"} {
		resp, err := client.Get(base + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}

	t.Run("plain HTTP on the TLS port is refused and logged at debug level", func(t *testing.T) {
		resp, err := http.Get("http://" + cfg.Addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP got %s, want 400", resp.Status)
		}
		waitFor(t, "the handshake error in the log", func() bool {
			return logs.has("level=DEBUG", "component=http", `msg="http: TLS handshake error`)
		})
	})

	t.Run("HTTP/1.1 even when the client offers h2 first", func(t *testing.T) {
		cc := certstest.ClientConfig(a)
		cc.NextProtos = []string{"h2", "http/1.1"} // as browsers offer
		conn, err := tls.Dial("tcp", cfg.Addr, cc)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("ALPN chose %q, want http/1.1 (a browser's WebSocket needs it)", p)
		}
	})

	// A socket opened now stays open through the reloads.
	dialer := &websocket.Dialer{TLSClientConfig: certstest.ClientConfig(a), HandshakeTimeout: 10 * time.Second}
	ws, _, err := dialer.Dial("wss://"+cfg.Addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "hello"}); err != nil {
		t.Fatal(err)
	}
	if reply := askTime(t, ws); !strings.HasPrefix(reply, "It is ") {
		t.Fatalf("the reply over wss:// was %q", reply)
	}

	isInUse := func(want certstest.Cert) func() bool {
		return func() bool { return serial(t, cfg.Addr, a, b, c).Cmp(want.Leaf.SerialNumber) == 0 }
	}
	hangUp := func() {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("renewed files are picked up by the poll", func(t *testing.T) {
		b.Write(t, certFile, keyFile)
		waitFor(t, "the second certificate in new handshakes", isInUse(b))
	})

	t.Run("a garbage renewal is logged and the old certificate stays", func(t *testing.T) {
		certstest.WriteFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"))
		hangUp()
		waitFor(t, "the failed reload in the log", func() bool {
			return logs.has(`msg="TLS certificate not reloaded; the old one stays in use"`, "why=reload")
		})
		if !isInUse(b)() {
			t.Fatal("the certificate in use changed after a garbage renewal")
		}
	})

	t.Run("SIGHUP reloads", func(t *testing.T) {
		c.Write(t, certFile, keyFile)
		hangUp()
		// The poll may pick the files up too, but only SIGHUP logs why=reload.
		waitFor(t, "the third certificate loaded on SIGHUP", func() bool {
			return logs.has(`msg="TLS certificate loaded"`, "why=reload") && isInUse(c)()
		})
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := metric(string(body), "parley_tls_cert_expiry_timestamp_seconds"); got != float64(c.Leaf.NotAfter.Unix()) {
			t.Fatalf("the expiry on /metrics is %v, want %d (the third certificate's)", got, c.Leaf.NotAfter.Unix())
		}
	})

	// The socket from before the reloads still works, on its old handshake.
	if reply := askTime(t, ws); !strings.HasPrefix(reply, "It is ") {
		t.Fatalf("the reply on the socket opened before the reloads was %q", reply)
	}
}

// A half-set pair is a configuration error; a pair that does not load
// stops the server before it listens.
func TestTLSBadSettings(t *testing.T) {
	for _, env := range []map[string]string{{"PARLEY_TLS_CERT": "cert.pem"}, {"PARLEY_TLS_KEY": "key.pem"}} {
		_, err := parseConfig(nil, func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), "-tls-cert and -tls-key go together") {
			t.Fatalf("%v: got %v", env, err)
		}
	}
	a, b := certstest.New(t), certstest.New(t)
	certFile, keyFile := tlsFiles(t, a)
	_, otherKey := tlsFiles(t, b)
	tests := []struct {
		name, cert, key, want string
	}{
		{"missing key file", certFile, filepath.Join(t.TempDir(), "none.pem"), "no such file"},
		{"the key of another certificate", certFile, otherKey, "private key does not match public key"},
		{"a key where the certificate goes", keyFile, keyFile, "failed to find certificate PEM data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"PARLEY_ADDR": freeAddr(t), "PARLEY_TLS_CERT": tc.cert, "PARLEY_TLS_KEY": tc.key, "PARLEY_ASR": "off"}
			cfg, err := parseConfig(nil, func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			err = run(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.cert) {
				t.Fatalf("run: %v; want an error naming %s that says %q", err, tc.cert, tc.want)
			}
			// Nothing listened: the address is still free.
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				t.Fatalf("the server listened before failing: %v", err)
			}
			ln.Close()
		})
	}
}

// The real binary, serving TLS, reloads on SIGHUP and goes on serving:
// the signal does not stop it (SIGINT and SIGTERM do).
func TestTLSProcessSurvivesSIGHUP(t *testing.T) {
	a := certstest.New(t)
	certFile, keyFile := tlsFiles(t, a)
	addr := freeAddr(t)
	logs := &syncBuf{}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PARLEY_TEST_SERVE=1", "PARLEY_ADDR="+addr, "PARLEY_ASR=off",
		"PARLEY_TLS_CERT="+certFile, "PARLEY_TLS_KEY="+keyFile, "PARLEY_DRAIN_TIMEOUT=1s")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }() // ends when the process does
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	client := httpsClient(a)
	waitHTTPS(t, client, "https://"+addr+"/readyz")
	for i := range 2 {
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the reload on SIGHUP", func() bool { return strings.Count(logs.String(), "SIGHUP: reloading") == i+1 })
	}
	waitHTTPS(t, client, "https://"+addr+"/healthz")
	select {
	case <-exited:
		t.Fatalf("the process exited after SIGHUP: %v\n%s", waitErr, logs)
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("after SIGTERM: %v\n%s", waitErr, logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("SIGTERM did not stop the process")
	}
}
