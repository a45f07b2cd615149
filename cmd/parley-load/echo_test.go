package main

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"gopkg.in/hraban/opus.v2"

	"github.com/parleyhq/parley/internal/testkit"
)

// The echo arms' caller: the bot's frames come back into its microphone
// at the path's gain, delay after they arrived, one a frame; an
// interruption drops those not yet heard back; the backlog is bounded.
// The clock is the test's (now is given), so nothing here hangs on the
// machine's pace.
func TestEchoPath(t *testing.T) {
	const n = echoRate / 50
	bot, err := opus.NewEncoder(echoRate, 1, opus.AppVoIP)
	if err != nil {
		t.Fatal(err)
	}
	tone := make([]int16, n)
	botPkt := func(k int) []byte { // 20 ms of a 440 Hz tone, the k-th
		for i := range tone {
			tone[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(k*n+i)/echoRate))
		}
		b := make([]byte, 1500)
		m, err := bot.Encode(tone, b)
		if err != nil {
			t.Fatal(err)
		}
		return b[:m]
	}
	silence := make([]byte, 2*n)
	mic, err := opus.NewDecoder(echoRate, 1) // the server's side of the caller
	if err != nil {
		t.Fatal(err)
	}
	heardRMS := func(e *echoPath, now time.Time) float64 {
		p, err := e.mix(silence, now)
		if err != nil {
			t.Fatal(err)
		}
		pcm := make([]int16, n)
		if _, err := mic.Decode(p, pcm); err != nil {
			t.Fatal(err)
		}
		return testkit.RMS(pcm)
	}
	toneRMS := 8000 / math.Sqrt2

	t0 := time.Unix(1000, 0)
	e, err := newEchoPath(dbGain(-6), 60*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 20; k++ {
		e.heard(botPkt(k), t0.Add(time.Duration(k)*frameDur))
	}
	if rms := heardRMS(e, t0.Add(59*time.Millisecond)); rms > 100 {
		t.Fatalf("before the delay the microphone hears %.0f RMS, want silence", rms)
	}
	var last float64
	for k := 0; k < 15; k++ {
		last = heardRMS(e, t0.Add(60*time.Millisecond+time.Duration(k)*frameDur))
	}
	if want := toneRMS * dbGain(-6); math.Abs(20*math.Log10(last/want)) > 2 {
		t.Fatalf("the echo at %.0f RMS, want %.0f (-6 dB of the tone) within 2 dB", last, want)
	}
	if got := len(e.queue); got != 5 {
		t.Fatalf("%d frames still to come back, want 5 (one heard back a frame)", got)
	}
	e.flush()
	for k := 0; k < 5; k++ { // the codec's own tail dies away
		last = heardRMS(e, t0.Add(time.Second))
	}
	if last > 100 {
		t.Fatalf("after an interruption the microphone hears %.0f RMS, want silence", last)
	}

	for k := 0; k < 2*echoBacklog; k++ {
		e.heard(botPkt(k), t0)
	}
	if got := len(e.queue); got != echoBacklog {
		t.Fatalf("%d frames queued, want at most %d", got, echoBacklog)
	}

	// Gain 0: the same work, nothing mixed in.
	quiet, err := newEchoPath(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 10; k++ {
		quiet.heard(botPkt(k), t0)
		if rms := heardRMS(quiet, t0.Add(time.Duration(k)*frameDur)); rms > 100 {
			t.Fatalf("gain 0: the microphone hears %.0f RMS", rms)
		}
	}
}

// The caller's own voice goes through the path as it is: the mix of PCM16
// speech and no echo decodes back to the speech's level.
func TestEchoPathKeepsTheVoice(t *testing.T) {
	speech, _, err := speechPCM("what time is it")
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEchoPath(dbGain(-6), 60*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := opus.NewDecoder(echoRate, 1)
	if err != nil {
		t.Fatal(err)
	}
	var in, out float64
	pcm := make([]int16, echoRate/50)
	for _, f := range speech {
		p, err := e.mix(f, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dec.Decode(p, pcm); err != nil {
			t.Fatal(err)
		}
		for i := range pcm {
			s := float64(int16(binary.LittleEndian.Uint16(f[2*i:])))
			in += s * s
			out += float64(pcm[i]) * float64(pcm[i])
		}
	}
	if db := 10 * math.Log10(out/in); math.Abs(db) > 2 {
		t.Fatalf("the voice comes out %.1f dB from what went in", db)
	}
}

// The A/B's summary: each arm's steps, their mean, and the mean held
// against the first arm's (gate off), raw and over the load generator's.
func TestSummarizeArms(t *testing.T) {
	step := func(arm echoArm, server, loadGen float64) echoABStep {
		return echoABStep{echoArm: arm, voiceStep: voiceStep{Calls: 50, Server: &procStats{CPUPercent: server}},
			LoadGen: &procStats{CPUPercent: loadGen}}
	}
	off, onEcho := echoArms[0], echoArms[2]
	sums := summarizeArms([]echoABStep{
		step(off, 30, 30), step(onEcho, 36, 30),
		step(onEcho, 30, 20), step(off, 20, 20),
	})
	if len(sums) != len(echoArms) {
		t.Fatalf("%d arms summed, want %d", len(sums), len(echoArms))
	}
	for _, tc := range []struct {
		name                   string
		got                    echoArmSummary
		mean, vs, ratio, ratVs float64
		steps                  int
	}{
		{"gate off", sums[0], 0.5, 0, 1, 0, 2},
		{"gate on, echo", sums[2], 0.66, 32, 1.35, 35, 2},
		{"gate on (no steps)", sums[1], 0, -100, 0, -100, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.got
			if len(g.CPUPerCall) != tc.steps || g.Mean != tc.mean || g.VsFirst != tc.vs || g.PerLoadGenMean != tc.ratio || g.PerLoadGenVsOff != tc.ratVs {
				t.Fatalf("%+v", g)
			}
		})
	}
}
