package turn

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parleyhq/parley/pipeline/session"
)

// A replica's accepted turns are jobs in a hash of its own,
// P:jobq:{replica}: the field is the job's id (the ms it was made and a
// counter, so that a takeover takes them in the order they came), the
// value its record (jobRecord, JSON). A hash, not a stream: a job is
// written once and deleted once, and a hash's HSET and HDEL cost Redis a
// quarter of a stream's XADD and XDEL (docs/benchmarks.md, "Fewer
// allocations and timers per turn"); an empty hash is gone by itself.
// Replicas from before kept them in a stream, P:jobs:{replica}, which a
// takeover still reads (adoptStream).

// jobRecord is a job as stored: the session, the turn or, for a job stored
// with its turn's start, the run that owns the turn, and the response's
// options when it has any, so that a replica that takes the job over
// answers it alike.
type jobRecord struct {
	Session string           `json:"s"`
	Turn    int64            `json:"t,omitempty"`
	Run     string           `json:"r,omitempty"`
	Opts    *ResponseOptions `json:"o,omitempty"`
}

func (e *Engine) jobsKey(replica string) string { return e.cfg.Prefix + ":jobq:{" + replica + "}" }

// legacyJobsKey is the job stream of a replica from before the hash.
func (e *Engine) legacyJobsKey(replica string) string {
	return e.cfg.Prefix + ":jobs:{" + replica + "}"
}

// newJobID is a job's field in its hash.
func (e *Engine) newJobID() string {
	return strconv.FormatInt(e.clk.Now().UnixMilli(), 10) + "-" + strconv.FormatUint(e.jobSeq.Add(1), 10)
}

// jobValue is j's record. A job with no turn yet names its run.
func jobValue(j *job) string {
	r := jobRecord{Session: j.session, Turn: j.turn}
	if j.turn == 0 {
		r.Run = j.run
	}
	if !j.opts.zero() {
		o := j.opts
		r.Opts = &o
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// readJob reads a record; a bad one is an error.
func readJob(v string) (jobRecord, error) {
	var r jobRecord
	if err := json.Unmarshal([]byte(v), &r); err != nil || r.Session == "" {
		return r, fmt.Errorf("a bad job record %q", v)
	}
	return r, nil
}

// jobField is j's field in its hash, its id made if it has none yet.
func (e *Engine) jobField(j *job) session.JobField {
	if j.entry == "" {
		j.entry = e.newJobID()
	}
	return session.JobField{Key: j.stream, Field: j.entry, Value: jobValue(j)}
}

// storeJob stores (or rewrites) j.
func (e *Engine) storeJob(ctx context.Context, j *job) error {
	f := e.jobField(j)
	return e.rdb.HSet(ctx, f.Key, f.Field, f.Value).Err()
}

func (e *Engine) deleteJob(ctx context.Context, j *job) {
	if err := e.rdb.HDel(ctx, j.stream, j.entry).Err(); err != nil {
		e.log.Warn("delete job", "session", j.session, "turn", j.turn, "err", err)
	}
}

// jobIDParts reads a job id (a hash field or a stream entry: both are
// "<ms>-<counter>").
func jobIDParts(id string) (ms int64, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseInt(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}

// jobTime is when a job was made, from its id.
func jobTime(id string) time.Time {
	ms, _ := jobIDParts(id)
	return time.UnixMilli(ms)
}

// byJobID orders job ids as they were made.
func byJobID(a, b string) int {
	am, as := jobIDParts(a)
	bm, bs := jobIDParts(b)
	return cmp.Or(cmp.Compare(am, bm), cmp.Compare(as, bs))
}

// adoptHash queues the jobs of replica r's hash, oldest first, moving them
// into this replica's hash unless r is this one. false: stop (an error,
// logged).
func (e *Engine) adoptHash(ctx context.Context, r string) bool {
	src, self := e.jobsKey(r), r == e.cfg.ReplicaID
	all, err := e.rdb.HGetAll(ctx, src).Result()
	if err != nil {
		e.log.Warn("adopt: read jobs", "from", r, "err", err)
		return false
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, byJobID)
	for _, id := range ids {
		rec, err := readJob(all[id])
		if err != nil {
			e.log.Warn("adopt: dropped", "from", r, "err", err)
			e.rdb.HDel(ctx, src, id)
			continue
		}
		j := &job{session: rec.Session, turn: rec.Turn, run: rec.Run, entry: id, stream: src, accepted: jobTime(id), adopted: true}
		if rec.Opts != nil {
			j.opts = *rec.Opts
		}
		if !e.adoptOne(ctx, r, self, j, func() { e.rdb.HDel(ctx, src, id) }) {
			return false
		}
	}
	return true
}

// adoptStream is adoptHash for a job stream of a replica from before the
// hash: 256 entries at a time.
func (e *Engine) adoptStream(ctx context.Context, r string) bool {
	src := e.legacyJobsKey(r)
	start := "-"
	for ctx.Err() == nil {
		msgs, err := e.rdb.XRangeN(ctx, src, start, "+", 256).Result()
		if err != nil {
			e.log.Warn("adopt: read job stream", "from", r, "err", err)
			return false
		}
		for _, m := range msgs {
			turn, _ := strconv.ParseInt(asString(m.Values["t"]), 10, 64)
			j := &job{session: asString(m.Values["s"]), turn: turn, run: asString(m.Values["r"]), entry: m.ID, stream: src,
				accepted: jobTime(m.ID), adopted: true, opts: jobOptions(m.Values)}
			// Even its own jobs move into the hash: the stream is not written any more.
			if !e.adoptOne(ctx, r, false, j, func() { e.rdb.XDel(ctx, src, m.ID) }) {
				return false
			}
		}
		if len(msgs) < 256 {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	_, _ = dropIfEmptyScript.Run(ctx, e.rdb, []string{src}).Int()
	return ctx.Err() == nil
}

// adoptOne queues one job taken from replica r, first finding the turn of
// one that names its run, and moving it into this replica's hash unless
// self (drop deletes it where it was). false: stop.
func (e *Engine) adoptOne(ctx context.Context, r string, self bool, j *job, drop func()) bool {
	byRun := j.turn == 0 && j.run != ""
	if byRun {
		t, ok, err := e.store.TurnOfRun(ctx, j.session, j.run)
		if err != nil {
			e.log.Warn("adopt: find a job's turn", "from", r, "session", j.session, "err", err)
			return false
		}
		if !ok { // its turn has its reply, or was never stored
			drop()
			return true
		}
		j.turn = t
	}
	j.run = "" // the adopter starts the turn with a run of its own
	if self && byRun {
		// Named by its turn from now on: the run it named is about to
		// lose the turn, and a second takeover could not find it.
		if err := e.storeJob(ctx, j); err != nil {
			e.log.Warn("adopt: rename job", "from", r, "err", err)
			return false
		}
	}
	if !self {
		// Into our hash first, then out of theirs: a crash between leaves
		// two copies, and the turn's run ownership makes the second a no-op.
		moved := &job{session: j.session, turn: j.turn, opts: j.opts, stream: e.jobsKey(e.cfg.ReplicaID)}
		if err := e.storeJob(ctx, moved); err != nil {
			e.log.Warn("adopt: move job", "from", r, "err", err)
			return false
		}
		drop()
		j.entry, j.stream = moved.entry, moved.stream
	}
	e.log.Info("taking over turn", "from", r, "session", j.session, "turn", j.turn)
	adopted.Inc()
	e.mu.Lock()
	e.queue = append(e.queue, j)
	e.mu.Unlock()
	signal(e.wake)
	return true
}

// fetchJob reads the job at at ("<key> <id>": its hash and field, or a
// stream and entry of a replica from before the hash) and, if it is not
// in this replica's hash, moves it there (ours first, then out of
// theirs, as a takeover does).
func (e *Engine) fetchJob(ctx context.Context, sessionID string, turn int64, at string) (*job, error) {
	key, id, _ := strings.Cut(at, " ")
	j := &job{session: sessionID, turn: turn, entry: id, stream: key}
	drop := func() { e.rdb.HDel(ctx, key, id) }
	if strings.HasPrefix(key, e.cfg.Prefix+":jobs:{") {
		msgs, err := e.rdb.XRangeN(ctx, key, id, id, 1).Result()
		if err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			return nil, fmt.Errorf("the job %s is gone", at)
		}
		j.opts = jobOptions(msgs[0].Values)
		drop = func() { e.rdb.XDel(ctx, key, id) }
	} else {
		v, err := e.rdb.HGet(ctx, key, id).Result()
		if err == redis.Nil {
			return nil, fmt.Errorf("the job %s is gone", at)
		}
		if err != nil {
			return nil, err
		}
		rec, err := readJob(v)
		if err != nil {
			return nil, err
		}
		if rec.Opts != nil {
			j.opts = *rec.Opts
		}
	}
	if mine := e.jobsKey(e.cfg.ReplicaID); key != mine {
		moved := &job{session: sessionID, turn: turn, opts: j.opts, stream: mine}
		if err := e.storeJob(ctx, moved); err != nil {
			return nil, err
		}
		drop()
		j.stream, j.entry = moved.stream, moved.entry
	}
	return j, nil
}
