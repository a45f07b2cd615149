//go:build !nospeech

package sphinx

/*
#cgo pkg-config: pocketsphinx
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <pocketsphinx.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/cmn.h>

static ps_decoder_t *new_decoder(const char *hmm, const char *lm, const char *dict) {
	char *argv[] = {"-hmm", (char *)hmm, "-lm", (char *)lm, "-dict", (char *)dict, "-logfn", "/dev/null"};
	cmd_ln_t *config = cmd_ln_parse_r(NULL, ps_args(), 8, argv, FALSE);
	if (config == NULL) return NULL;
	ps_decoder_t *ps = ps_init(config);
	cmd_ln_free_r(config); // ps_init holds its own reference
	return ps;
}

// The decoder's cepstral mean normalisation: its running estimate of the
// channel's mean, which each utterance updates.
static int cmn_len(ps_decoder_t *ps) {
	feat_t *f = ps_get_feat(ps);
	return f && f->cmn_struct ? f->cmn_struct->veclen : 0;
}
static void cmn_save(ps_decoder_t *ps, mfcc_t *out) {
	cmn_t *c = ps_get_feat(ps)->cmn_struct;
	memcpy(out, c->cmn_mean, c->veclen * sizeof(mfcc_t));
}
// cmn_restore sets the means to in, weighing them as weight frames of
// audio against what the call brings.
static void cmn_restore(ps_decoder_t *ps, const mfcc_t *in, int weight) {
	cmn_t *c = ps_get_feat(ps)->cmn_struct;
	cmn_live_set(c, in);
	for (int i = 0; i < c->veclen; i++) c->sum[i] = in[i] * weight;
	c->nframe = weight;
}

static const char *hyp(ps_decoder_t *ps) {
	int32 score;
	return ps_get_hyp(ps, &score);
}
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/parleyhq/parley/pipeline/speech"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var behind = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "asr", Name: "dropped_chunks_total",
	Help: "Audio chunks dropped because a recogniser fell behind.",
})

// Config of an ASR. A zero field means the default in its comment.
type Config struct {
	ModelDir string // default /usr/share/pocketsphinx/model/en-us (Debian's pocketsphinx-en-us)
	Decoders int    // most decoders at once, one per live call; default 4 (about 93 MB each)
	Queue    int    // audio chunks queued per call before Write refuses; default 250 (5 s of 20 ms)
	// PartialEvery: how much new audio between partial results; default 300ms.
	PartialEvery time.Duration
}

// ErrBehind is returned by Write when the recogniser's queue is full.
var ErrBehind = errors.New("sphinx: the recogniser is behind; audio dropped")

// ErrNoDecoder is returned by NewCall when every decoder is in use.
var ErrNoDecoder = errors.New("sphinx: every speech recogniser is in use")

// ASR is a pool of pocketsphinx decoders.
type ASR struct {
	cfg           Config
	hmm, lm, dict *C.char
	sem           chan struct{}
	mu            sync.Mutex
	idle          []*decoder
}

// decoder is a pocketsphinx decoder and the state of its cepstral mean
// normalisation as loaded: each call starts from it, not from what the
// decoder's last caller left (a voice, a microphone, a codec of its own),
// so that a call's words do not depend on who called before it.
type decoder struct {
	ps   *C.ps_decoder_t
	cmn0 []C.mfcc_t
}

// newDecoder loads a decoder; nil if it failed.
func (a *ASR) newDecoder() *decoder {
	ps := C.new_decoder(a.hmm, a.lm, a.dict)
	if ps == nil {
		return nil
	}
	d := &decoder{ps: ps}
	if n := C.cmn_len(ps); n > 0 {
		d.cmn0 = make([]C.mfcc_t, n)
		C.cmn_save(ps, &d.cmn0[0])
	}
	return d
}

// normalisation is the decoder's current estimate of the channel's mean.
func (d *decoder) normalisation() []float32 {
	now := make([]C.mfcc_t, len(d.cmn0))
	if len(now) > 0 {
		C.cmn_save(d.ps, &now[0])
	}
	out := make([]float32, len(now))
	for i, v := range now {
		out[i] = float32(v)
	}
	return out
}

// priorFrames is how much audio (10 ms frames) the loaded normalisation
// counts for against a call's own: a second, so that a call's first
// words move it most of the way to the call's line (a phone's 8 kHz band
// lies far from the model's own), where pocketsphinx's 500 frames would
// keep a phone call's next words heard as through a wideband microphone.
const priorFrames = 100

// reset puts the decoder's normalisation back as it was loaded.
func (d *decoder) reset() {
	if len(d.cmn0) > 0 {
		C.cmn_restore(d.ps, &d.cmn0[0], priorFrames)
	}
}

var (
	_ speech.ASR    = (*ASR)(nil)
	_ speech.Lagger = (*recognizer)(nil)
)

var silenceOnce sync.Once

// New checks the model and loads the first decoder, so that a missing
// model is found at start-up.
func New(cfg Config) (*ASR, error) {
	if cfg.ModelDir == "" {
		cfg.ModelDir = "/usr/share/pocketsphinx/model/en-us"
	}
	if cfg.Decoders <= 0 {
		cfg.Decoders = 4
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 250
	}
	if cfg.PartialEvery <= 0 {
		cfg.PartialEvery = 300 * time.Millisecond
	}
	paths := []string{filepath.Join(cfg.ModelDir, "en-us"), filepath.Join(cfg.ModelDir, "en-us.lm.bin"), filepath.Join(cfg.ModelDir, "cmudict-en-us.dict")}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("sphinx: model file missing (install pocketsphinx-en-us): %w", err)
		}
	}
	silenceOnce.Do(func() { C.err_set_logfp(nil) })
	a := &ASR{cfg: cfg, hmm: C.CString(paths[0]), lm: C.CString(paths[1]), dict: C.CString(paths[2]), sem: make(chan struct{}, cfg.Decoders)}
	d := a.newDecoder()
	if d == nil {
		return nil, fmt.Errorf("sphinx: decoder failed to load from %s", cfg.ModelDir)
	}
	a.idle = append(a.idle, d)
	return a, nil
}

// SampleRate implements speech.ASR: the model is for 16 kHz speech.
func (a *ASR) SampleRate() int { return 16000 }

// NewCall implements speech.ASR. It waits for a free decoder until ctx
// ends, then returns ErrNoDecoder.
func (a *ASR) NewCall(ctx context.Context, partial func(string)) (speech.Recognizer, error) {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ErrNoDecoder
	}
	a.mu.Lock()
	var d *decoder
	if n := len(a.idle); n > 0 {
		d, a.idle = a.idle[n-1], a.idle[:n-1]
	}
	a.mu.Unlock()
	if d == nil {
		if d = a.newDecoder(); d == nil {
			<-a.sem
			return nil, errors.New("sphinx: decoder failed to load")
		}
	}
	d.reset()
	r := &recognizer{a: a, dec: d, partial: partial, ops: make(chan op, a.cfg.Queue)}
	go r.run() // ends when Close closes ops
	return r, nil
}

type op struct {
	pcm []int16
	end chan string
}

type recognizer struct {
	a       *ASR
	dec     *decoder
	partial func(string)
	ops     chan op
	closed  bool
	// Samples written, and how many of them the latest words cover.
	written, covered atomic.Int64
}

// Lag implements speech.Lagger.
func (r *recognizer) Lag() time.Duration {
	return time.Duration(r.written.Load()-r.covered.Load()) * time.Second / 16000
}

// Write implements speech.Recognizer.
func (r *recognizer) Write(pcm []int16) error {
	if r.closed || len(pcm) == 0 {
		return nil
	}
	select {
	case r.ops <- op{pcm: append([]int16(nil), pcm...)}:
		r.written.Add(int64(len(pcm)))
		return nil
	default:
		behind.Inc()
		return ErrBehind
	}
}

// End implements speech.Recognizer.
func (r *recognizer) End(ctx context.Context) (string, error) {
	if r.closed {
		return "", errors.New("sphinx: recogniser closed")
	}
	ch := make(chan string, 1)
	select {
	case r.ops <- op{end: ch}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select {
	case text := <-ch:
		return text, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Close implements speech.Recognizer.
func (r *recognizer) Close() {
	if !r.closed {
		r.closed = true
		close(r.ops)
	}
}

// run decodes on its own goroutine, so the call's media loop never waits
// for pocketsphinx (up to 150 ms of CPU for a chunk).
func (r *recognizer) run() {
	d := r.dec.ps
	inUtt := false
	var since int
	var processed int64
	every := int(r.a.cfg.PartialEvery.Seconds() * 16000)
	last := ""
	for o := range r.ops {
		switch {
		case o.pcm != nil:
			if !inUtt {
				C.ps_start_utt(d)
				inUtt, since, last = true, 0, ""
			}
			C.ps_process_raw(d, (*C.int16)(unsafe.Pointer(&o.pcm[0])), C.size_t(len(o.pcm)), 0, 0)
			since += len(o.pcm)
			processed += int64(len(o.pcm))
			if r.partial != nil && since >= every {
				since = 0
				if h := goString(C.hyp(d)); h != "" && h != last {
					last = h
					r.partial(h)
				}
				r.covered.Store(processed) // after the partial: the words first
			}
		case o.end != nil:
			text := ""
			if inUtt {
				C.ps_end_utt(d)
				text = goString(C.hyp(d))
				inUtt = false
			}
			r.covered.Store(processed)
			o.end <- text
		}
	}
	if inUtt {
		C.ps_end_utt(d)
	}
	r.a.mu.Lock()
	r.a.idle = append(r.a.idle, r.dec)
	r.a.mu.Unlock()
	<-r.a.sem
}

func goString(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}
