package record

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/parleyhq/parley/internal/clock"
	"github.com/parleyhq/parley/pipeline/call"
	"github.com/parleyhq/parley/pipeline/event"
)

// Config tunes the recorder. A zero field means the default in its
// comment.
type Config struct {
	Dir string // where recordings go; required
	// Retention: recordings whose files were last written longer ago than
	// this are deleted (Run); 0: kept for ever.
	Retention time.Duration
	// Queue: audio frames (of both channels) queued per recording for its
	// writer, the oldest dropped past it; default 100 (a second).
	Queue int
	Clock clock.Clock // for Run's sweeps; default the system's
}

func (c *Config) setDefaults() {
	if c.Queue <= 0 {
		c.Queue = 100
	}
	c.Clock = clock.Or(c.Clock)
}

var (
	openRecordings = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "record", Name: "open",
		Help: "Call recordings being written on this replica.",
	})
	droppedFrames = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "record", Name: "dropped_frames_total",
		Help: "Audio frames left out of recordings because the disk was too slow (oldest first).",
	})
	writeErrors = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "record", Name: "write_errors_total",
		Help: "Recordings that could not be opened or written (each stops there; the call goes on).",
	})
	deletedFiles = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "record", Name: "deleted_files_total",
		Help: "Recording files deleted for being older than the retention.",
	})
)

// Recorder opens the recordings of a replica's calls (call.Recorder) and
// deletes old ones (Run).
type Recorder struct {
	cfg Config
	log *slog.Logger
}

var _ call.Recorder = (*Recorder)(nil)

// New checks that Dir can be created and written: a recorder that could
// record nothing is refused at start, not found out call by call.
func New(cfg Config, log *slog.Logger) (*Recorder, error) {
	cfg.setDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("record: no directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	probe, err := os.CreateTemp(cfg.Dir, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("record: %s is not writable: %w", cfg.Dir, err)
	}
	probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return &Recorder{cfg: cfg, log: log}, nil
}

// Start implements call.Recorder: it creates the call's two files and
// starts their writer.
func (r *Recorder) Start(sessionID string, rate int, start time.Time) (call.Recording, error) {
	if rate < 8000 || rate > 48000 {
		return nil, fmt.Errorf("record: rate %d Hz: want 8000 to 48000", rate)
	}
	wav, txt, err := r.create(sessionID, start)
	if err != nil {
		writeErrors.Inc()
		return nil, err
	}
	rec := &Recording{
		queue: r.cfg.Queue, wake: make(chan struct{}, 1), done: make(chan struct{}),
		w: newWriter(wav, txt, rate, start),
	}
	if err := rec.w.header(); err != nil {
		writeErrors.Inc()
		rec.w.close()
		return nil, fmt.Errorf("record: %w", err)
	}
	openRecordings.Inc()
	log := r.log.With("recording", wav.Name())
	go rec.run(log) // ends when Close has been called and the queue written
	return rec, nil
}

// create makes the day's folder and the call's files, new ones: a second
// call of a session in the same millisecond gets a suffix.
func (r *Recorder) create(sessionID string, start time.Time) (wav, txt *os.File, err error) {
	start = start.UTC()
	dir := filepath.Join(r.cfg.Dir, start.Format(dayLayout))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("record: %w", err)
	}
	base := filepath.Join(dir, fileSafe(sessionID)+"-"+start.Format("20060102T150405.000Z"))
	for i := 1; i <= 100; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		wav, err = os.OpenFile(name+".wav", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("record: %w", err)
		}
		txt, err = os.OpenFile(name+".jsonl", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			wav.Close()
			os.Remove(wav.Name())
			return nil, nil, fmt.Errorf("record: %w", err)
		}
		return wav, txt, nil
	}
	return nil, nil, fmt.Errorf("record: %s: too many recordings of that session at once", base)
}

// dayLayout names the folder of a day's recordings.
const dayLayout = "2006-01-02"

// fileSafe is id with anything but letters, digits, - and _ replaced:
// session ids are hex, but a file name takes no chances.
func fileSafe(id string) string {
	if id == "" {
		return "session"
	}
	if len(id) > 64 {
		id = id[:64]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, id)
}

// Recording is one call's recording (call.Recording). Its methods queue
// for its writer goroutine and never block.
type Recording struct {
	queue int // audio items allowed in q
	wake  chan struct{}
	done  chan struct{} // closed when the writer has finished
	w     *writer       // the writer goroutine's

	mu     sync.Mutex
	q      []item
	audio  int // audio items in q
	closed bool
	err    error // the writer's first error, for Close
}

// item is one thing for the writer.
type item struct {
	kind     itemKind
	pcm      []int16
	frame    int64     // bot: its number; cut: the last played; spoke: the first heard
	last     int64     // cut: the last sent; spoke: the last heard
	at       time.Time // audio: its arrival or sending; a line: when it was said
	from, to time.Time // heard: when the caller's speech began and ended
	line     *line
}

type itemKind uint8

const (
	callerAudio itemKind = iota
	botAudio
	cutBot
	heardLine
	spokeLine
)

// controlSlack is how many items other than audio (cuts, transcript
// lines: a few a turn) may queue beyond the audio.
const controlSlack = 64

var _ call.Recording = (*Recording)(nil)

// Caller implements call.Recording.
func (r *Recording) Caller(pcm []int16, at time.Time) {
	r.push(item{kind: callerAudio, pcm: append([]int16(nil), pcm...), at: at})
}

// Bot implements call.Recording.
func (r *Recording) Bot(frame int64, pcm []int16, at time.Time) {
	r.push(item{kind: botAudio, frame: frame, pcm: append([]int16(nil), pcm...), at: at})
}

// Cut implements call.Recording.
func (r *Recording) Cut(played, sent int64) {
	r.push(item{kind: cutBot, frame: played, last: sent})
}

// Heard implements call.Recording.
func (r *Recording) Heard(at time.Time, turn int64, source event.Source, text string, from, to time.Time) {
	l := &line{Speaker: "caller", Turn: turn, Source: string(source), Text: text}
	r.push(item{kind: heardLine, at: at, from: from, to: to, line: l})
}

// Spoke implements call.Recording.
func (r *Recording) Spoke(at time.Time, turn int64, text string, first, last int64, cut bool) {
	l := &line{Speaker: "bot", Turn: turn, Text: text, Interrupted: &cut}
	r.push(item{kind: spokeLine, at: at, frame: first, last: last, line: l})
}

// push queues it for the writer; past the queue's bound the oldest audio
// is dropped (or, with no audio queued, the oldest item).
func (r *Recording) push(it item) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	isAudio := it.kind == callerAudio || it.kind == botAudio
	if isAudio && r.audio >= r.queue {
		r.dropOldestAudio()
	}
	if len(r.q) >= r.queue+controlSlack {
		r.drop(0)
	}
	r.q = append(r.q, it)
	if isAudio {
		r.audio++
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Recording) dropOldestAudio() {
	for i, it := range r.q {
		if it.kind == callerAudio || it.kind == botAudio {
			r.drop(i)
			return
		}
	}
}

// drop removes the i-th queued item and counts it, under r.mu.
func (r *Recording) drop(i int) {
	if k := r.q[i].kind; k == callerAudio || k == botAudio {
		r.audio--
	}
	r.q = append(r.q[:i], r.q[i+1:]...)
	droppedFrames.Inc()
}

// Close implements call.Recording: it waits until what was queued is
// written and the files are closed, and returns the first error met.
func (r *Recording) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// run is the writer goroutine: it writes what is queued until Close, then
// the rest, and closes the files.
func (r *Recording) run(log *slog.Logger) {
	defer close(r.done)
	defer openRecordings.Dec()
	var batch []item
	for {
		<-r.wake
		r.mu.Lock()
		batch, r.q = r.q, batch[:0]
		r.audio = 0
		closed := r.closed
		r.mu.Unlock()
		for i := range batch {
			r.fail(log, r.w.handle(&batch[i]))
			batch[i] = item{} // its samples are free now
		}
		if closed {
			r.fail(log, r.w.finish())
			return
		}
		r.fail(log, r.w.flush(false))
	}
}

// fail keeps the writer's first error and stops the writing there: a disk
// that failed once is not written frame by frame again.
func (r *Recording) fail(log *slog.Logger, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	r.err = fmt.Errorf("record: %w", err)
	writeErrors.Inc()
	log.Error("recording stopped: the disk write failed; the call goes on", "err", err)
}
