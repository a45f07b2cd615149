//go:build !nospeech

package flite

/*
#cgo LDFLAGS: -lflite_cmu_us_kal16 -lflite_cmu_us_kal -lflite_cmu_us_slt -lflite_cmu_us_rms -lflite_cmu_us_awb -lflite_usenglish -lflite_cmulex -lflite -lm
#include <stdlib.h>
#include <flite/flite.h>

cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);

extern int parleyFliteChunk(short *samples, int n, int rate, int last, uintptr_t handle);

static int stream_chunk(const cst_wave *w, int start, int size, int last, cst_audio_streaming_info *asi) {
	return parleyFliteChunk(w->samples + start, size, w->sample_rate, last, (uintptr_t)asi->userdata);
}

// synth speaks text on voice, streaming to the Go callback named by handle.
// Everything here belongs to this utterance, so calls may run at once.
static int synth(cst_voice *voice, const char *text, uintptr_t handle) {
	cst_utterance *u = new_utterance();
	utt_set_input_text(u, text);
	cst_audio_streaming_info *asi = new_audio_streaming_info();
	asi->asc = stream_chunk;
	asi->userdata = (void *)handle;
	feat_set(u->features, "streaming_info", audio_streaming_info_val(asi));
	utt_init(u, voice);
	int ok = utt_synth(u) != NULL;
	delete_utterance(u);
	return ok;
}
*/
import "C"

import (
	"context"
	"fmt"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// Config of a Voice. A zero field means the default in its comment.
type Config struct {
	Voice string // kal16 (default), kal, slt, rms or awb
}

// Voice is a flite voice. Safe for concurrent use.
type Voice struct {
	v    *C.cst_voice
	rate int
}

var (
	initOnce sync.Once
	voicesMu sync.Mutex
	voices   = map[string]*C.cst_voice{}
)

// New loads the voice (once per process) and measures its sample rate.
func New(cfg Config) (*Voice, error) {
	if cfg.Voice == "" {
		cfg.Voice = "kal16"
	}
	initOnce.Do(func() { C.flite_init() })
	voicesMu.Lock()
	v, ok := voices[cfg.Voice]
	if !ok {
		switch cfg.Voice {
		case "kal16":
			v = C.register_cmu_us_kal16(nil)
		case "kal":
			v = C.register_cmu_us_kal(nil)
		case "slt":
			v = C.register_cmu_us_slt(nil)
		case "rms":
			v = C.register_cmu_us_rms(nil)
		case "awb":
			v = C.register_cmu_us_awb(nil)
		default:
			voicesMu.Unlock()
			return nil, fmt.Errorf("flite: unknown voice %q (kal16, kal, slt, rms, awb)", cfg.Voice)
		}
		if v == nil {
			voicesMu.Unlock()
			return nil, fmt.Errorf("flite: voice %q failed to load", cfg.Voice)
		}
		voices[cfg.Voice] = v
	}
	voicesMu.Unlock()
	fv := &Voice{v: v}
	// The rate is the voice's; speak a word once to learn it.
	err := fv.Synthesize(context.Background(), "a", func(pcm []int16) error { return nil })
	if err != nil {
		return nil, err
	}
	if fv.rate == 0 {
		return nil, fmt.Errorf("flite: voice %q produced no audio", cfg.Voice)
	}
	return fv, nil
}

// SampleRate implements speech.TTS.
func (v *Voice) SampleRate() int { return v.rate }

type call struct {
	ctx  context.Context
	emit func([]int16) error
	err  error
	rate int
}

//export parleyFliteChunk
func parleyFliteChunk(samples *C.short, n C.int, rate C.int, last C.int, handle C.uintptr_t) C.int {
	c := cgo.Handle(handle).Value().(*call)
	c.rate = int(rate)
	if c.ctx.Err() != nil {
		c.err = c.ctx.Err()
		return C.CST_AUDIO_STREAM_STOP
	}
	if n > 0 {
		// Copied: flite reuses its buffer after we return.
		pcm := append([]int16(nil), unsafe.Slice((*int16)(unsafe.Pointer(samples)), int(n))...)
		if err := c.emit(pcm); err != nil {
			c.err = err
			return C.CST_AUDIO_STREAM_STOP
		}
	}
	return C.CST_AUDIO_STREAM_CONT
}

// Synthesize implements speech.TTS.
func (v *Voice) Synthesize(ctx context.Context, text string, emit func(pcm []int16) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &call{ctx: ctx, emit: emit}
	h := cgo.NewHandle(c)
	defer h.Delete()
	ct := C.CString(text)
	defer C.free(unsafe.Pointer(ct))
	ok := C.synth(v.v, ct, C.uintptr_t(h))
	if c.err != nil {
		return c.err
	}
	if ok == 0 {
		return fmt.Errorf("flite: synthesis failed for %q", text)
	}
	if v.rate == 0 {
		v.rate = c.rate
	}
	return nil
}
