package certs

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley/signaling/certs/certstest"
)

// logBuf is a log that tests read while the Reloader writes it.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

type fixture struct {
	t                 *testing.T
	certFile, keyFile string
	log               *logBuf
	r                 *Reloader
}

func newFixture(t *testing.T, first certstest.Cert) *fixture {
	dir := t.TempDir()
	f := &fixture{t: t, certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"), log: &logBuf{}}
	first.Write(t, f.certFile, f.keyFile)
	r, err := New(Config{CertFile: f.certFile, KeyFile: f.keyFile}, slog.New(slog.NewTextHandler(f.log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f.r = r
	return f
}

// inUse fails the test unless the handshake certificate is want.
func (f *fixture) inUse(want certstest.Cert) {
	f.t.Helper()
	c, err := f.r.GetCertificate(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if got := c.Leaf.SerialNumber; got.Cmp(want.Leaf.SerialNumber) != 0 {
		f.t.Fatalf("serial in use %x, want %x", got, want.Leaf.SerialNumber)
	}
}

func TestNewRefusesABadPair(t *testing.T) {
	a, b := certstest.New(t), certstest.New(t)
	tests := []struct {
		name      string
		cert, key []byte // nil: no file
		want      string
	}{
		{"no certificate file", nil, a.KeyPEM, "no such file"},
		{"no key file", a.CertPEM, nil, "no such file"},
		{"garbage certificate", []byte("not a certificate\n"), a.KeyPEM, "failed to find any PEM data"},
		{"garbage key", a.CertPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "key"},
		{"the key of another certificate", a.CertPEM, b.KeyPEM, "private key does not match public key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			for path, data := range map[string][]byte{cf: tc.cert, kf: tc.key} {
				if data != nil {
					certstest.WriteFile(t, path, data)
				}
			}
			_, err := New(Config{CertFile: cf, KeyFile: kf}, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), cf) {
				t.Fatalf("error %q should name %s and say %q", err, cf, tc.want)
			}
		})
	}
}

// Reload (SIGHUP) loads the files even when they look unchanged, and a bad
// pair leaves the old certificate in use.
func TestReload(t *testing.T) {
	a, b := certstest.New(t), certstest.New(t)
	f := newFixture(t, a)
	f.inUse(a)
	if err := f.r.Reload(); err != nil {
		t.Fatal(err)
	}
	f.inUse(a)
	b.Write(t, f.certFile, f.keyFile)
	if err := f.r.Reload(); err != nil {
		t.Fatal(err)
	}
	f.inUse(b)
	certstest.WriteFile(t, f.certFile, []byte("garbage\n"))
	if err := f.r.Reload(); err == nil {
		t.Fatal("a garbage certificate reloaded without an error")
	}
	f.inUse(b)
	if n := f.log.count("old one stays in use"); n != 1 {
		t.Fatalf("the failed reload was logged %d times, want once", n)
	}
}

// The poll loads the files when they change, whichever way they change,
// and tries a bad pair once per change, not at every tick.
func TestPollFollowsTheFiles(t *testing.T) {
	certs := make([]certstest.Cert, 4)
	for i := range certs {
		certs[i] = certstest.New(t)
	}
	f := newFixture(t, certs[0])
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	checked := make(chan struct{})
	go func() { done <- f.r.run(ctx, tick, func() { checked <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	poll := func() { tick <- time.Time{}; <-checked }
	failures := func() int { return f.log.count("old one stays in use") }

	poll()
	if n := f.log.count("TLS certificate loaded"); n != 1 {
		t.Fatalf("unchanged files were loaded again (%d loads logged)", n)
	}

	certs[1].Write(t, f.certFile, f.keyFile) // renamed over, as certbot and deploys do
	poll()
	f.inUse(certs[1])

	// Half a renewal: the new certificate, the old key. Tried once, kept out.
	certstest.WriteFile(t, f.certFile, certs[2].CertPEM)
	poll()
	f.inUse(certs[1])
	poll()
	if n := failures(); n != 1 {
		t.Fatalf("a mismatched pair was logged %d times over two polls, want once", n)
	}
	certstest.WriteFile(t, f.keyFile, certs[2].KeyPEM) // the other half
	poll()
	f.inUse(certs[2])

	// Written in place (same inode): the size changed.
	if err := os.WriteFile(f.certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	poll()
	f.inUse(certs[2])
	if n := failures(); n != 2 {
		t.Fatalf("%d failures logged, want 2", n)
	}

	// A file gone is a failure too; the certificate in use stays.
	if err := os.Remove(f.keyFile); err != nil {
		t.Fatal(err)
	}
	poll()
	f.inUse(certs[2])
	if n := failures(); n != 3 {
		t.Fatalf("%d failures logged, want 3", n)
	}

	certs[3].Write(t, f.certFile, f.keyFile)
	poll()
	f.inUse(certs[3])
}

func TestRunEndsWithItsContext(t *testing.T) {
	f := newFixture(t, certstest.New(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// Handshakes read the certificate while reloads replace it.
func TestGetCertificateDuringReloads(t *testing.T) {
	a, b := certstest.New(t), certstest.New(t)
	f := newFixture(t, a)
	b.Write(t, f.certFile, f.keyFile)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // ends after its reloads
		defer wg.Done()
		for range 50 {
			_ = f.r.Reload()
		}
	}()
	go func() { // ends after its reads
		defer wg.Done()
		for range 500 {
			if c, _ := f.r.GetCertificate(nil); c == nil || c.Leaf == nil {
				t.Error("no certificate")
				return
			}
		}
	}()
	wg.Wait()
	f.inUse(b)
}
