package record

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// sweepEvery is how often Run looks for recordings past the retention.
const sweepEvery = time.Hour

// Run deletes recordings older than Config.Retention, at once and then
// every hour, until ctx ends; with no retention it only waits for ctx.
// A file it cannot delete is logged and tried again at the next sweep.
func (r *Recorder) Run(ctx context.Context) error {
	if r.cfg.Retention <= 0 {
		<-ctx.Done()
		return nil
	}
	ticks, stop := r.cfg.Clock.NewTicker(sweepEvery)
	defer stop()
	for {
		r.sweep()
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// sweep deletes the recordings (.wav, .jsonl) last written before the
// retention, in the day folders of Dir, and the day folders left empty.
// It touches nothing else.
func (r *Recorder) sweep() (deleted int) {
	before := r.cfg.Clock.Now().Add(-r.cfg.Retention)
	days, err := os.ReadDir(r.cfg.Dir)
	if err != nil {
		r.log.Error("recordings: retention sweep", "err", err)
		return 0
	}
	today := r.cfg.Clock.Now().UTC().Format(dayLayout)
	for _, d := range days {
		if _, err := time.Parse(dayLayout, d.Name()); err != nil || !d.IsDir() {
			continue
		}
		dir := filepath.Join(r.cfg.Dir, d.Name())
		deleted += r.sweepDay(dir, before)
		// Today's stays: a call may be about to record there.
		if left, err := os.ReadDir(dir); err == nil && len(left) == 0 && d.Name() < today {
			if err := os.Remove(dir); err != nil {
				r.log.Warn("recordings: retention sweep", "err", err)
			}
		}
	}
	return deleted
}

func (r *Recorder) sweepDay(dir string, before time.Time) (deleted int) {
	files, err := os.ReadDir(dir)
	if err != nil {
		r.log.Warn("recordings: retention sweep", "err", err)
		return 0
	}
	for _, f := range files {
		name := f.Name()
		if f.IsDir() || !(strings.HasSuffix(name, ".wav") || strings.HasSuffix(name, ".jsonl")) {
			continue
		}
		info, err := f.Info()
		if err != nil || !info.ModTime().Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("recordings: retention sweep", "err", err)
			continue
		}
		deleted++
		deletedFiles.Inc()
	}
	return deleted
}
