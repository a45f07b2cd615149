package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	reloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_tls_reloads_total",
		Help: "Loads of the TLS certificate files after the first, by result (ok, failed).",
	}, []string{"result"})
	notAfter = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "parley_tls_cert_expiry_timestamp_seconds",
		Help: "When the TLS certificate in use expires (its NotAfter), in Unix seconds.",
	})
)

// Config names the files of a certificate and its key.
type Config struct {
	// CertFile holds the PEM certificate, followed by its intermediates.
	CertFile string
	// KeyFile holds the PEM private key of the certificate.
	KeyFile string
	// Poll is how often Run looks at the files for a change; zero: 5 s.
	Poll time.Duration
}

// Reloader holds the certificate in use and loads it again when asked or
// when its files change.
type Reloader struct {
	cfg  Config
	log  *slog.Logger
	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex // serialises loads; guards seen
	seen [2]stamp   // the files as they were at the last load attempt
}

// New loads the pair named in cfg. It fails if either file cannot be read
// or the key does not match the certificate.
func New(cfg Config, log *slog.Logger) (*Reloader, error) {
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Second
	}
	r := &Reloader{cfg: cfg, log: log}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load("start"); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate returns the certificate in use, for tls.Config.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Reload loads the files again, changed or not. On an error the old
// certificate stays in use; the error is logged and returned.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count(r.load("reload"))
}

// Run checks the files every Poll and loads them when they have changed,
// until ctx ends. It returns nil.
func (r *Reloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Poll)
	defer t.Stop()
	return r.run(ctx, t.C, func() {})
}

// run is Run with its ticks given and told of each check's end, so tests
// drive the poll.
func (r *Reloader) run(ctx context.Context, tick <-chan time.Time, checked func()) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			r.check()
			checked()
		}
	}
}

// check loads the files if they differ from the last attempt. A pair that
// failed is not tried again until one of its files changes once more, so
// a bad pair is logged once, not at every poll.
func (r *Reloader) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.stamps()
	if now[0].same(r.seen[0]) && now[1].same(r.seen[1]) {
		return
	}
	_ = r.count(r.load("files changed"))
}

// load reads the pair and puts it in use. The files are looked at before
// they are read: a write that lands in between shows as a change at the
// next check. Called with mu held.
func (r *Reloader) load(why string) error {
	r.seen = r.stamps()
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		err = fmt.Errorf("TLS certificate %s with key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
		if why != "start" {
			r.log.Error("TLS certificate not reloaded; the old one stays in use", "why", why, "err", err)
		}
		return err
	}
	r.cert.Store(&cert)
	leaf := cert.Leaf // parsed by LoadX509KeyPair
	notAfter.Set(float64(leaf.NotAfter.Unix()))
	r.log.Info("TLS certificate loaded", "why", why, "names", names(leaf),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Now().After(leaf.NotAfter) {
		r.log.Warn("the TLS certificate has expired: browsers will refuse it", "not_after", leaf.NotAfter)
	}
	return nil
}

func (r *Reloader) count(err error) error {
	if err != nil {
		reloads.WithLabelValues("failed").Inc()
	} else {
		reloads.WithLabelValues("ok").Inc()
	}
	return err
}

func (r *Reloader) stamps() [2]stamp {
	return [2]stamp{stampOf(r.cfg.CertFile), stampOf(r.cfg.KeyFile)}
}

// stamp is what a check compares of a file: its identity (a rename over it
// makes a new one), size and modification time, or why it could not be
// looked at.
type stamp struct {
	fi  os.FileInfo
	err string
}

func stampOf(path string) stamp {
	fi, err := os.Stat(path) // through a symlink, as certbot's live/ files are
	if err != nil {
		return stamp{err: err.Error()}
	}
	return stamp{fi: fi}
}

func (s stamp) same(o stamp) bool {
	if s.fi == nil || o.fi == nil {
		return s.fi == nil && o.fi == nil && s.err == o.err
	}
	return os.SameFile(s.fi, o.fi) && s.fi.Size() == o.fi.Size() && s.fi.ModTime().Equal(o.fi.ModTime())
}

// names lists the certificate's DNS names and IP addresses for the log.
func names(leaf *x509.Certificate) string {
	all := append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		all = append(all, ip.String())
	}
	return strings.Join(all, ",")
}
