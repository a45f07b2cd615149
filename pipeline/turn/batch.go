package turn

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/session"
)

// runBatch runs one upstream call for jobs and stores each reply. When ctx
// (the Engine's Run) ends first, it stops without finishing or deleting
// anything: the jobs stay in their hash for another replica to take over.
func (e *Engine) runBatch(ctx context.Context, jobs []*job) {
	inflight.Inc()
	defer inflight.Dec()
	defer e.inactive(jobs)
	bctx, cancel := context.WithTimeout(ctx, e.cfg.TurnTimeout)
	defer cancel()

	live := make([]*job, 0, len(jobs))
	reqs := make([]llm.Request, 0, len(jobs))
	for _, j := range jobs {
		req, ok := e.startJob(bctx, j)
		if !ok {
			continue
		}
		live = append(live, j)
		reqs = append(reqs, req)
	}
	if len(live) == 0 {
		return
	}
	batchSize.Observe(float64(len(live)))
	now := e.clk.Now()
	for _, j := range live {
		queueWait.Observe(now.Sub(j.accepted).Seconds())
		j.mu.Lock() // Interrupt may read it: the job is active since dispatch
		j.stop = func() { e.stopIfAllStopped(live, cancel) }
		j.mu.Unlock()
	}

	// Stores text that waited longer than Coalesce when the model pauses:
	// a timer, not a goroutine, since most calls end before it fires.
	pz := &pauses{e: e, ctx: bctx, live: live}
	for _, j := range live {
		j.mu.Lock()
		j.pauses = pz
		j.mu.Unlock()
	}
	err := e.llm.Stream(bctx, reqs, func(i int, p llm.Piece) {
		text := p.Text
		if i < 0 || i >= len(live) || (text == "" && p.Call == nil) {
			return
		}
		j := live[i]
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.status != session.Appended {
			return
		}
		if p.Call != nil {
			if len(reqs[i].Tools) > 0 { // a call of a tool it was not offered is no call
				j.calls = append(j.calls, *p.Call)
			}
			return
		}
		if j.text.Len() == 0 && needsSpace(j.prior, text) {
			text = " " + text // a step's words after the last step's, not run into them
		}
		if j.text.Cap() == 0 {
			j.text.Grow(max(len(text), 256)) // most replies in one buffer, not five doublings
		}
		j.text.WriteString(text)
		// The first piece goes after FirstWait (time to first token, but a
		// reply that comes whole goes whole with its end); then when
		// Coalesce has passed, or at a clause end once a fifth of it has:
		// natural chunks for a slow model, few writes for a fast one.
		if !j.flushed {
			if j.firstWait == nil {
				j.firstWait = e.clk.AfterFunc(e.cfg.FirstWait, func() { e.flushFirst(bctx, j) })
			}
			return // no clock read for the pieces a whole reply brings at once
		}
		since := e.clk.Now().Sub(j.lastFlush)
		if since >= e.cfg.Coalesce || (since >= e.cfg.Coalesce/5 && clauseEnd(text)) {
			e.flushLocked(bctx, j)
		}
	})
	pz.stop()

	if ctx.Err() != nil {
		return // the replica is stopping: leave the jobs for takeover
	}
	// A finished turn must be stored even if the batch's deadline passed,
	// and through a Redis restart: durably retries within StoreRetry, and
	// the Redis client's timeouts end an attempt that hangs.
	fctx := context.WithoutCancel(ctx)
	for _, j := range live {
		e.finishJob(fctx, j, err, bctx.Err())
	}
}

// startJob makes this run the owner of the job's turn and builds what the
// model is asked. It reports false when the turn needs no call (already
// replied, cut before it started, or waiting for tool results).
func (e *Engine) startJob(ctx context.Context, j *job) (llm.Request, bool) {
	// The history and the session's settings come with the start, in the
	// same round trip; for a turn started as it was stored, they came then.
	var st session.Started
	var err error
	if j.started != nil {
		st, j.started = *j.started, nil
	} else {
		j.run = e.newRun()
		err = e.durably(ctx, "start turn", func(ctx context.Context) (err error) {
			st, err = e.store.Start(ctx, j.session, j.turn, j.run, e.cfg.HistoryTurns, jobAt(j))
			return err
		})
	}
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("start turn", "session", j.session, "turn", j.turn, "err", err)
			e.publishError(ctx, j.session, &TurnError{Code: CodeInternal, Turn: j.turn, Message: "the turn could not be started; try again"})
			e.deleteJob(ctx, j)
		}
		return llm.Request{}, false
	}
	switch st.Status {
	case session.StartDone:
		turnsTotal.WithLabelValues("duplicate").Inc()
		e.deleteJob(ctx, j)
		return llm.Request{}, false
	case session.StartWaiting:
		e.resumeWait(j, st)
		return llm.Request{}, false
	case session.StartCut:
		j.prior = priorText(st.History, j.turn)
		if j.written != nil && j.prior != "" {
			go e.hold(j, j.prior) // cut while its tools ran: the call says what was heard
			return llm.Request{}, false
		}
		e.finishCut(ctx, j, "")
		e.deleteJob(ctx, j)
		return llm.Request{}, false
	}
	j.reset = st.Takeover
	j.endAtTools = st.Settings.EndAtClientTools
	j.status = session.Appended
	j.steps, j.prior = st.Steps, priorText(st.History, j.turn)
	conv := e.conversation(st.History, j.turn, e.instructions(st.Settings, j.opts))
	return e.request(j, conv, st.Settings), true
}

// pauses stores, every Coalesce, the text of a batch's jobs that waited
// longer than Coalesce, from its first flush (arm) until stop. Before a
// job's first flush its first piece has a timer of its own (FirstWait),
// and a reply that comes whole is stored with its end: most batches of a
// fast model never arm it, and pay for no timer. A tick under way when
// stop is called ends its round. Goroutine-safe.
type pauses struct {
	e    *Engine
	ctx  context.Context
	live []*job

	mu      sync.Mutex
	armed   bool
	stopped bool
	cancel  func() bool
}

// arm starts the ticks, once; the caller may hold a job's mu.
func (p *pauses) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed || p.stopped {
		return
	}
	p.armed = true
	p.cancel = p.e.clk.AfterFunc(p.e.cfg.Coalesce, p.tick)
}

func (p *pauses) tick() {
	for _, j := range p.live {
		j.mu.Lock()
		if j.text.Len() > j.stored && p.e.clk.Now().Sub(j.lastFlush) >= p.e.cfg.Coalesce {
			p.e.flushLocked(p.ctx, j)
		}
		j.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.cancel = p.e.clk.AfterFunc(p.e.cfg.Coalesce, p.tick)
	}
}

func (p *pauses) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.cancel != nil {
		p.cancel()
	}
}

// finishCut stores an interrupted turn's reply: what the client was sent
// of this step, after the earlier steps' text.
func (e *Engine) finishCut(ctx context.Context, j *job, text string) {
	if _, err := e.store.FinishReply(ctx, j.session, session.Finish{Turn: j.turn, Run: j.run, Prior: j.prior, Text: text, Interrupted: true}); err != nil {
		e.log.Warn("finish interrupted turn", "session", j.session, "turn", j.turn, "err", err)
	}
	turnsTotal.WithLabelValues("interrupted").Inc()
}

// instructions is a response's system prompt: its own, else the
// session's, else the server's.
func (e *Engine) instructions(set session.Settings, opts ResponseOptions) string {
	switch {
	case opts.Instructions != "":
		return opts.Instructions
	case set.Instructions != "":
		return set.Instructions
	}
	return e.cfg.SystemPrompt
}

// conversation is what the model sees for turn: the system prompt, then
// the history up to that turn in turn order (its user message before the
// rest of the turn: the tool steps so far, with their results), so that
// the turn's own message and steps come last even when later turns, or
// replies to earlier ones, were stored after them.
func (e *Engine) conversation(hist []session.Turn, turn int64, system string) []llm.Message {
	kept := seen(hist, turn)
	conv := make([]llm.Message, 0, len(kept)+1)
	conv = append(conv, llm.Message{Role: llm.RoleSystem, Content: system})
	for _, t := range kept {
		conv = append(conv, llm.Message{Role: t.Role, Content: t.Content, ToolCallID: t.CallID, ToolCalls: storedCalls(t.ToolCalls)})
	}
	return answerMissing(conv)
}

// storedCalls reads an assistant message's calls, as toolStep wrote them.
// A function of its own so that only a message with calls pays for an
// allocation: decoding into a field of the loop's message made every
// message escape to the heap (a fifth of a turn's allocations).
func storedCalls(stored string) []llm.ToolCall {
	if stored == "" {
		return nil
	}
	var calls []llm.ToolCall
	_ = json.Unmarshal([]byte(stored), &calls)
	return calls
}

// seen is the history the model sees for turn, in turn order: hist itself
// when it already is (the usual case, at no cost; hist is the store's and
// read only), else a sorted copy of what it keeps.
func seen(hist []session.Turn, turn int64) []session.Turn {
	keep := func(t session.Turn) bool {
		return t.N < turn || (t.N == turn && (t.Role != llm.RoleAssistant || t.ToolCalls != ""))
	}
	inOrder := func(a, b session.Turn) int {
		if a.N != b.N {
			return cmp.Compare(a.N, b.N)
		}
		return cmp.Compare(roleRank(a), roleRank(b))
	}
	as := true
	for i, t := range hist {
		if !keep(t) || (i > 0 && inOrder(hist[i-1], t) > 0) {
			as = false
			break
		}
	}
	if as {
		return hist
	}
	kept := make([]session.Turn, 0, len(hist))
	for _, t := range hist {
		if keep(t) {
			kept = append(kept, t)
		}
	}
	slices.SortStableFunc(kept, inOrder)
	return kept
}

// roleRank puts a turn's user message before its other entries.
func roleRank(t session.Turn) int {
	if t.Role == llm.RoleUser {
		return 0
	}
	return 1
}

// noResult is what the model is told of a call whose result never came
// (its turn ended at its tool step, and the client sent none, or not
// yet): chat APIs refuse a call without a result.
const noResult = "error: no result was given for this call"

// answerMissing puts a result after every tool call that has none in
// conv.
func answerMissing(conv []llm.Message) []llm.Message {
	answered := map[string]bool{}
	missing := false
	for _, m := range conv {
		if m.ToolCallID != "" {
			answered[m.ToolCallID] = true
		}
	}
	for _, m := range conv {
		for _, c := range m.ToolCalls {
			missing = missing || !answered[c.ID]
		}
	}
	if !missing {
		return conv
	}
	out := make([]llm.Message, 0, len(conv)+1)
	for _, m := range conv {
		out = append(out, m)
		for _, c := range m.ToolCalls {
			if !answered[c.ID] {
				out = append(out, llm.Message{Role: llm.RoleTool, Content: noResult, ToolCallID: c.ID})
			}
		}
	}
	return out
}

// flushFirst stores a reply's first piece, FirstWait after it came,
// unless the reply's end is being stored (with it).
func (e *Engine) flushFirst(ctx context.Context, j *job) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.finishing {
		e.flushLocked(ctx, j)
	}
}

// flushLocked stores the job's buffered text as one reply.delta. j.mu held.
func (e *Engine) flushLocked(ctx context.Context, j *job) {
	if j.text.Len() == j.stored || j.status != session.Appended {
		return
	}
	if j.pauses != nil {
		j.pauses.arm() // from now on text left buffered by a pause is stored
	}
	if j.delta == "" {
		j.delta, j.deltaEnd = e.store.NewCall(), j.text.Len()
	}
	text := j.text.String()[j.stored:j.deltaEnd]
	if j.reset {
		// A takeover starts the turn's reply again: its earlier tool
		// steps' text comes first.
		text = j.prior + text
	}
	st, err := e.store.AppendDelta(session.WithCall(ctx, j.delta), j.session, j.turn, j.run, text, j.reset)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("append delta", "session", j.session, "turn", j.turn, "err", err)
		}
		// Still pending: the same call at the next flush, so that a
		// delta Redis stored though its reply was lost is not stored
		// twice.
		return
	}
	if !j.flushed {
		firstToken.Observe(e.clk.Now().Sub(j.accepted).Seconds())
	}
	j.stored, j.delta = j.deltaEnd, ""
	j.reset = false
	j.flushed = true
	j.lastFlush = e.clk.Now()
	if st != session.Appended {
		j.status = st
		if j.stop != nil {
			go j.stop() // takes e.mu and other jobs' locks: not under j.mu
		}
	}
}

// deferDelete keeps a held job in its hash until the turn is finished:
// if this replica dies meanwhile, another one answers the turn in full.
func (e *Engine) deferDelete(j *job) { j.keep = true }

// stopIfAllStopped cancels the upstream call once no job in it is live.
func (e *Engine) stopIfAllStopped(jobs []*job, cancel context.CancelFunc) {
	for _, j := range jobs {
		j.mu.Lock()
		live := j.status == session.Appended
		j.mu.Unlock()
		if live {
			return
		}
	}
	cancel()
}

// finishJob stores the outcome of one turn of a finished call.
func (e *Engine) finishJob(ctx context.Context, j *job, callErr, batchErr error) {
	if e.finishJobLocked(ctx, j, callErr, batchErr) {
		e.requeue(j) // a tool step answered at once: the next step now
	}
}

// finishJobLocked is finishJob under j.mu; true when the job is to be
// queued again.
func (e *Engine) finishJobLocked(ctx context.Context, j *job, callErr, batchErr error) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.finishing = true // the first piece's timer stores nothing now
	if j.firstWait != nil {
		j.firstWait()
	}
	j.keep = false
	defer func() {
		if !j.keep {
			e.deleteJob(ctx, j)
		}
	}()
	if j.status == session.Appended && callErr == nil && len(j.calls) > 0 {
		if stored, again := e.toolStep(ctx, j); stored && !j.ended {
			return again // the job waits for the results, or is queued again
		}
	}
	if j.status == session.Appended && callErr == nil {
		if j.written != nil || (j.reset && j.prior != "") {
			e.flushLocked(ctx, j) // may find the turn cut or taken over
		}
		if j.status == session.Appended && j.written != nil {
			e.deferDelete(j)
			go e.hold(j, j.prior+j.text.String()) // the call finishes it
			return false
		}
		if j.status == session.Appended {
			e.finishReply(ctx, j)
			return false
		}
	}
	switch j.status {
	case session.Stale:
		return false // another run took the turn over and owns its reply
	case session.Cut:
		// Store the text the client was sent, not what was still buffered.
		streamed := j.text.String()[:j.stored]
		if j.written != nil {
			e.deferDelete(j)
			go e.hold(j, j.prior+streamed) // the call says what was heard
			return false
		}
		e.finishCut(ctx, j, streamed)
		return false
	}
	msg := "the language model failed: " + callErr.Error()
	if errors.Is(batchErr, context.DeadlineExceeded) {
		msg = fmt.Sprintf("the language model did not finish within %s", e.cfg.TurnTimeout)
	}
	e.log.Warn("llm call failed", "session", j.session, "turn", j.turn, "err", callErr)
	turnsTotal.WithLabelValues(string(CodeUpstream)).Inc()
	var ok bool
	_ = e.durably(ctx, "fail turn", func(ctx context.Context) (err error) {
		ok, err = e.store.FailTurn(ctx, j.session, j.turn, j.run)
		return err
	})
	if ok {
		e.publishError(ctx, j.session, &TurnError{Code: CodeUpstream, Turn: j.turn, Message: msg})
	}
	return false
}

// finishReply stores a text turn's reply: what is still buffered as its
// last delta, reply.done, and the job's deletion, in one script. j.mu
// held.
func (e *Engine) finishReply(ctx context.Context, j *job) {
	if j.delta != "" {
		e.flushLocked(ctx, j) // the delta that failed first, as the call it was
	}
	tail := j.pending()
	var st session.FinishStatus
	err := e.durably(ctx, "finish turn", func(ctx context.Context) (err error) {
		st, err = e.store.FinishReply(ctx, j.session, session.Finish{
			Turn: j.turn, Run: j.run, Prior: j.prior, Text: j.text.String(), Tail: tail, Reset: j.reset && tail != "",
			Job: session.JobField{Key: j.stream, Field: j.entry},
		})
		return err
	})
	j.keep = true // deleted with the finish
	if err == nil && tail != "" && !j.flushed {
		firstToken.Observe(e.clk.Now().Sub(j.accepted).Seconds())
	}
	switch {
	case err != nil:
		e.log.Error("finish turn", "session", j.session, "turn", j.turn, "err", err)
		turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
		e.publishError(ctx, j.session, &TurnError{Code: CodeInternal, Turn: j.turn, Message: "the reply could not be stored"})
	case st == session.FinishedCut:
		turnsTotal.WithLabelValues("interrupted").Inc()
	case st == session.Finished:
		turnsTotal.WithLabelValues("replied").Inc()
	default:
		turnsTotal.WithLabelValues("duplicate").Inc()
	}
}

// clauseEnd reports whether text ends a clause, a natural point to store.
func clauseEnd(text string) bool {
	t := strings.TrimRight(text, " \t")
	if t == "" {
		return strings.ContainsRune(text, '\n')
	}
	switch t[len(t)-1] {
	case '.', ',', '!', '?', ';', ':', '\n':
		return true
	}
	return false
}

// needsSpace reports whether a step's text that starts with next, after
// the turn's earlier steps' prior, needs a space between them.
func needsSpace(prior, next string) bool {
	if prior == "" || next == "" {
		return false
	}
	last, first := prior[len(prior)-1], next[0]
	return !isSpace(last) && !isSpace(first)
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\t' }
