package main

import (
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"testing"
	"time"
)

// -gc-percent and -memory-limit: their defaults (the README's, checked
// by TestREADMEListsEverySetting), what they accept, and a clear error at
// start for the rest.
func TestMemorySettings(t *testing.T) {
	good := []struct {
		name  string
		env   map[string]string
		args  []string
		gc    int
		limit int64
	}{
		{"defaults", nil, nil, defaultGCPercent, 0},
		{"from the environment", map[string]string{"PARLEY_GC_PERCENT": "250", "PARLEY_MEMORY_LIMIT": "900MiB"}, nil, 250, 900 << 20},
		{"flags win", map[string]string{"PARLEY_GC_PERCENT": "250"}, []string{"-gc-percent", "100", "-memory-limit", "2GiB"}, 100, 2 << 30},
		{"0 is the default percent", nil, []string{"-gc-percent", "0"}, defaultGCPercent, 0},
		{"plain bytes", nil, []string{"-memory-limit", "1073741824"}, defaultGCPercent, 1 << 30},
		{"B", nil, []string{"-memory-limit", "3B"}, defaultGCPercent, 3},
		{"KiB", nil, []string{"-memory-limit", "64KiB"}, defaultGCPercent, 64 << 10},
		{"TiB", nil, []string{"-memory-limit", "1TiB"}, defaultGCPercent, 1 << 40},
		{"0 is none", map[string]string{"PARLEY_MEMORY_LIMIT": "0"}, nil, defaultGCPercent, 0},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if cfg.GCPercent != tc.gc || cfg.memoryLimit != tc.limit {
				t.Fatalf("gc percent %d, limit %d; want %d, %d", cfg.GCPercent, cfg.memoryLimit, tc.gc, tc.limit)
			}
		})
	}
	bad := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"negative percent", nil, []string{"-gc-percent", "-1"}},
		{"percent not a number", map[string]string{"PARLEY_GC_PERCENT": "lots"}, nil},
		{"percent off (that is GOGC's)", map[string]string{"PARLEY_GC_PERCENT": "off"}, nil},
		{"negative limit", nil, []string{"-memory-limit", "-1"}},
		{"decimal unit", nil, []string{"-memory-limit", "1GB"}},
		{"fraction", nil, []string{"-memory-limit", "1.5GiB"}},
		{"junk", map[string]string{"PARLEY_MEMORY_LIMIT": "lots"}, nil},
		{"unit alone", nil, []string{"-memory-limit", "MiB"}},
		{"too large", nil, []string{"-memory-limit", "9000000TiB"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

// -memory-release: every 10 s by default (the figure the idle benchmark
// measured), negative for never; a clear error for what is not a
// duration.
func TestMemoryReleaseSetting(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want time.Duration
		bad  bool
	}{
		{"default", nil, nil, 10 * time.Second, false},
		{"from the environment", map[string]string{"PARLEY_MEMORY_RELEASE": "1m"}, nil, time.Minute, false},
		{"never", nil, []string{"-memory-release", "-1s"}, -time.Second, false},
		{"not a duration", map[string]string{"PARLEY_MEMORY_RELEASE": "often"}, nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(tc.args, func(k string) string { return tc.env[k] })
			switch {
			case tc.bad && err == nil:
				t.Fatal("want an error")
			case tc.bad:
				return
			case err != nil:
				t.Fatal(err)
			case cfg.MemoryRelease != tc.want:
				t.Fatalf("-memory-release %v, want %v", cfg.MemoryRelease, tc.want)
			}
		})
	}
}

// applyMemory sets the runtime's GC percent and memory limit, and leaves
// each alone when GOGC or GOMEMLIMIT is set (the runtime read them).
// Not parallel: it changes this process's runtime.
func TestApplyMemory(t *testing.T) {
	gc0, limit0 := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc0); debug.SetMemoryLimit(limit0) })
	log := slog.New(slog.DiscardHandler)
	cfg := &config{GCPercent: 250, memoryLimit: 300 << 20}

	applyMemory(cfg, func(string) string { return "" }, log)
	if got := debug.SetGCPercent(100); got != 250 {
		t.Errorf("GC percent %d after applyMemory, want 250", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != 300<<20 {
		t.Errorf("memory limit %d after applyMemory, want %d", got, 300<<20)
	}

	applyMemory(&config{GCPercent: 250}, func(string) string { return "" }, log)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d with -memory-limit 0, want none", got)
	}

	debug.SetGCPercent(123)
	env := map[string]string{"GOGC": "123", "GOMEMLIMIT": "1GiB"}
	applyMemory(cfg, func(k string) string { return env[k] }, log)
	if got := debug.SetGCPercent(100); got != 123 {
		t.Errorf("GC percent %d with GOGC set, want it untouched (123)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d with GOMEMLIMIT set, want it untouched", got)
	}
}

// The real process: with no settings it runs at the documented default
// (the runtime's own figures on /metrics), the Parley settings change it,
// and GOGC / GOMEMLIMIT win over them.
func TestMemorySettingsInProcess(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		gc    float64
		limit float64
	}{
		{"defaults", nil, defaultGCPercent, math.MaxInt64},
		{"settings", []string{"PARLEY_GC_PERCENT=250", "PARLEY_MEMORY_LIMIT=256MiB"}, 250, 256 << 20},
		{"GOGC and GOMEMLIMIT win", []string{"PARLEY_GC_PERCENT=250", "PARLEY_MEMORY_LIMIT=256MiB", "GOGC=150", "GOMEMLIMIT=300MiB"}, 150, 300 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The test's own GOGC / GOMEMLIMIT, if any, dropped (an empty
			// value is unset for the runtime and for parley alike).
			p := startProc(t, append([]string{"GOGC=", "GOMEMLIMIT=", "PARLEY_GC_PERCENT=", "PARLEY_MEMORY_LIMIT="}, tc.env...)...)
			resp, err := http.Get("http://" + p.addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			page, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := metric(string(page), "go_gc_gogc_percent"); got != tc.gc {
				t.Errorf("go_gc_gogc_percent %v, want %v", got, tc.gc)
			}
			if got := metric(string(page), "go_gc_gomemlimit_bytes"); got != tc.limit {
				t.Errorf("go_gc_gomemlimit_bytes %v, want %v", got, tc.limit)
			}
		})
	}
}
