package turn

import (
	"context"
	"strings"
	"time"

	"github.com/parleyhq/parley/pipeline/session"
)

type turnKey struct {
	session string
	turn    int64
}

// heldTurn is a spoken turn between the model's last word and the call's
// report of what was heard. Either may come first.
type heldTurn struct {
	job     *job    // set when the model has finished
	written string  // what the model wrote
	heard   *string // set when the call has reported
	cut     bool
	stop    func() bool // stops the HoldMax timeout
}

// hold parks a spoken job whose model call has finished, with the text it
// wrote (all of it, or what was streamed before a cut). The slot is free
// again; FinishSpoken stores the reply.
func (e *Engine) hold(j *job, written string) {
	k := turnKey{j.session, j.turn}
	e.mu.Lock()
	h := e.held[k]
	if h == nil {
		h = &heldTurn{}
		e.held[k] = h
	}
	h.job, h.written = j, written
	ready := h.heard != nil
	if !ready {
		h.stop = e.clk.AfterFunc(e.cfg.HoldMax, func() { e.finishHeld(k, true) })
	}
	e.mu.Unlock()
	if ready {
		e.finishHeld(k, false)
		return
	}
	j.written(j.turn, written)
}

// FinishSpoken reports what the caller heard of a spoken turn's reply, and
// whether they cut it off. The turn's reply.done (after interrupted, if
// cut) is stored with heard as its text.
func (e *Engine) FinishSpoken(ctx context.Context, sessionID string, turn int64, heard string, cut bool) {
	k := turnKey{sessionID, turn}
	e.mu.Lock()
	h := e.held[k]
	if h == nil {
		// The model has not finished yet (a barge-in): the decision waits
		// for it, and is dropped if no job ever comes (taken over).
		h = &heldTurn{stop: e.clk.AfterFunc(e.cfg.HoldMax, func() {
			e.mu.Lock()
			if cur := e.held[k]; cur != nil && cur.job == nil {
				delete(e.held, k)
			}
			e.mu.Unlock()
		})}
		e.held[k] = h
	}
	h.heard, h.cut = &heard, cut
	ready := h.job != nil
	e.mu.Unlock()
	if ready {
		e.finishHeld(k, false)
	}
}

// finishHeld stores a held turn's reply: the call's report if there is
// one, else (on timeout or drain) the whole written text.
func (e *Engine) finishHeld(k turnKey, timedOut bool) {
	e.mu.Lock()
	h := e.held[k]
	if h == nil || h.job == nil || (!timedOut && h.heard == nil) {
		e.mu.Unlock()
		return
	}
	delete(e.held, k)
	if h.stop != nil {
		h.stop()
	}
	e.mu.Unlock()
	text, cut := h.written, false
	if h.heard != nil {
		text, cut = *h.heard, h.cut
	}
	j := h.job
	// The text of the turn's tool steps is in the history already: the
	// reply's own is what came after. (Cut inside it, the reply is what
	// was heard, and the history keeps the steps' text as written.)
	prior := j.prior
	if !strings.HasPrefix(text, prior) {
		prior = ""
	}
	text = text[len(prior):]
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreRetry+5*time.Second)
	defer cancel()
	var ok bool
	err := e.durably(ctx, "finish spoken turn", func(ctx context.Context) (err error) {
		var st session.FinishStatus
		st, err = e.store.FinishReply(ctx, j.session, session.Finish{Turn: j.turn, Run: j.run, Prior: prior, Text: text, Interrupted: cut})
		ok = st != session.FinishNone
		return err
	})
	switch {
	case err != nil:
		e.log.Error("finish spoken turn", "session", j.session, "turn", j.turn, "err", err)
		e.publishError(ctx, j.session, &TurnError{Code: CodeInternal, Turn: j.turn, Message: "the reply could not be stored"})
	case ok && cut:
		turnsTotal.WithLabelValues("interrupted").Inc()
	case ok:
		turnsTotal.WithLabelValues("replied").Inc()
	}
	e.deleteJob(ctx, j)
}

// finishAllHeld finishes every held turn with what the model wrote: the
// replica is draining and its calls are ending.
func (e *Engine) finishAllHeld() {
	e.mu.Lock()
	var keys []turnKey
	for k, h := range e.held {
		if h.job != nil {
			keys = append(keys, k)
		}
	}
	e.mu.Unlock()
	for _, k := range keys {
		e.finishHeld(k, true)
	}
}
