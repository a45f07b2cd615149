package main

import (
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent is -gc-percent's default. Measured against Go's 100
// and 400 (docs/benchmarks.md, "Memory and GC"): 4–11 % less server CPU
// per turn for 6–14 % more peak RSS; 400 saved 10–15 % for 51 %.
const defaultGCPercent = 200

// parseByteSize reads a size as GOMEMLIMIT writes it: a whole number of
// bytes with an optional unit, B, KiB, MiB, GiB or TiB (1GiB, 512MiB,
// 1073741824). 0 is none.
func parseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = n, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	switch {
	case err != nil || n < 0:
		return 0, fmt.Errorf("%q: want bytes with a unit, e.g. 512MiB or 2GiB (B, KiB, MiB, GiB, TiB); 0: none", s)
	case n > math.MaxInt64>>shift:
		return 0, fmt.Errorf("%q: too large", s)
	}
	return n << shift, nil
}

// applyMemory sets the Go runtime's GC percent and soft memory limit from
// -gc-percent and -memory-limit, unless GOGC or GOMEMLIMIT is set: the
// runtime has read those at start, and an operator who tunes Go the way
// Go documents gets what they asked for (logged, so that it is seen).
func applyMemory(cfg *config, env func(string) string, log *slog.Logger) {
	if v := env("GOGC"); v != "" {
		log.Info("GOGC is set: it wins over -gc-percent", "GOGC", v)
	} else {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if v := env("GOMEMLIMIT"); v != "" {
		log.Info("GOMEMLIMIT is set: it wins over -memory-limit", "GOMEMLIMIT", v)
	} else if cfg.memoryLimit > 0 {
		debug.SetMemoryLimit(cfg.memoryLimit)
	}
}
