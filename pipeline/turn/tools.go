package turn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/tools"
)

// A turn whose reply ends in tool calls is a tool step: its text and calls
// are stored (the calls as tool.call events and in the history), its slot
// is free, and it waits for the results, holding nothing but a timer: the
// results of server tools from goroutines of this replica, the client's
// through ToolResult on whichever replica holds its socket. The last
// result requeues the turn's job (moved to the replica that stored it, if
// it was another's), and the next step calls the model with the results.
// The state of the wait is in the session's meta hash, so a replica that
// takes the job over resumes the wait (see startJob).

// ErrUnknownCall: no call of that id waits for a result from the client.
var ErrUnknownCall = errors.New("no tool call of that id is waiting for a result")

// request is what the model is asked for a job: the conversation, and the
// tools, until the turn has taken its ToolSteps.
func (e *Engine) request(j *job, conv []llm.Message, set session.Settings) llm.Request {
	req := llm.Request{Messages: conv, ToolChoice: set.ToolChoice}
	j.serverTools = set.ServerTools
	if j.opts.ToolChoice != "" {
		req.ToolChoice = j.opts.ToolChoice
	}
	if !e.llm.CallsTools() || j.steps >= e.cfg.ToolSteps {
		req.ToolChoice = ""
		return req
	}
	client := set.Tools
	if j.opts.Tools != nil {
		client = *j.opts.Tools
	}
	j.clientTools = make(map[string]bool, len(client))
	for _, t := range client {
		j.clientTools[t.Name] = true
		req.Tools = append(req.Tools, t)
	}
	req.Tools = append(req.Tools, tools.Offered(e.cfg.Toolbox, j.serverTools)...)
	return req
}

// serverTool reports whether the server runs a tool of that name for a
// session whose selection is sel: a tool it does not offer the session is
// as unknown as a made-up one, and is not run.
func (e *Engine) serverTool(name string, sel *[]string) bool {
	if e.cfg.Toolbox == nil || !tools.Allowed(e.cfg.Toolbox, sel, name) {
		return false
	}
	for _, t := range e.cfg.Toolbox.Tools() {
		if t.Name == name {
			return true
		}
	}
	return false
}

// classify sorts a step's calls: those that wait for a result (and their
// tool.call events), and those answered at once (a tool not offered,
// arguments that are not JSON).
func (e *Engine) classify(j *job) (events [][]byte, pending []session.PendingCall, results []session.ToolOutput) {
	for i := range j.calls {
		c := &j.calls[i]
		if c.ID == "" {
			c.ID = newCallID()
		}
		if strings.TrimSpace(c.Arguments) == "" {
			c.Arguments = "{}"
		}
		by := ""
		switch {
		case j.clientTools[c.Name]:
			by = string(event.ByClient)
		case e.serverTool(c.Name, j.serverTools):
			by = string(event.ByServer)
		default:
			results = append(results, session.ToolOutput{ID: c.ID, Output: fmt.Sprintf("error: there is no tool named %q; the tools offered are the ones in the request", c.Name)})
			continue
		}
		if !json.Valid([]byte(c.Arguments)) {
			results = append(results, session.ToolOutput{ID: c.ID, Output: "error: the arguments are not valid JSON; call the tool again with a JSON object"})
			continue
		}
		events = append(events, event.Marshal(event.ToolCall{Turn: j.turn, CallID: c.ID, Name: c.Name, Arguments: c.Arguments, By: event.Runner(by)}))
		pending = append(pending, session.PendingCall{ID: c.ID, Turn: j.turn, By: by, Name: c.Name, Arguments: c.Arguments})
	}
	return events, pending, results
}

func newCallID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "call_" + hex.EncodeToString(b[:])
}

// jobAt is where a job is: its hash and field.
func jobAt(j *job) string { return j.stream + " " + j.entry }

// toolStep stores a step that ended in tool calls and starts the wait for
// their results. j.mu held. It reports whether the step was stored (when
// not, the turn was cut, or another run owns it: the caller finishes the
// job as if it had no calls), and whether the next step is due at once
// (no call waits for a result).
func (e *Engine) toolStep(ctx context.Context, j *job) (stored, now bool) {
	e.flushLocked(ctx, j) // the text before the calls reaches the client first
	if j.status != session.Appended {
		return false, false
	}
	events, pending, results := e.classify(j)
	calls, _ := json.Marshal(j.calls)
	// With EndAtClientTools, a step that calls the client's tools ends the
	// turn: their results are stored when they come (on any replica), no
	// step follows, and the next response sees them.
	end := j.endAtTools && callsClient(pending)
	// Waiting before the calls are known: a result may come at once, and
	// must find the job (resume waits for j.mu, so for the rest of this).
	k := turnKey{j.session, j.turn}
	if len(pending) > 0 && !end {
		e.mu.Lock()
		e.waiting[k] = j
		e.mu.Unlock()
	}
	unwait := func() {
		e.mu.Lock()
		delete(e.waiting, k)
		e.mu.Unlock()
	}
	var st session.AppendStatus
	err := e.durably(ctx, "rename job", func(ctx context.Context) error { return e.nameTurn(ctx, j, end) })
	if err == nil {
		err = e.durably(ctx, "tool step", func(ctx context.Context) (err error) {
			st, err = e.store.StoreToolStep(ctx, j.session, session.ToolStep{
				Turn: j.turn, Run: j.run, Text: j.text.String(), Calls: string(calls), JobAt: jobAt(j),
				Events: events, Pending: pending, Results: results, End: end,
			})
			return err
		})
	}
	if err != nil {
		unwait()
		e.log.Error("store tool step", "session", j.session, "turn", j.turn, "err", err)
		turnsTotal.WithLabelValues(string(CodeInternal)).Inc()
		if ok, _ := e.store.FailTurn(ctx, j.session, j.turn, j.run); ok {
			e.publishError(ctx, j.session, &TurnError{Code: CodeInternal, Turn: j.turn, Message: "the model's tool calls could not be stored"})
		}
		j.status = session.Stale // finished: the job goes
		return true, false
	}
	if st != session.Appended {
		unwait()
		j.status = st
		return false, false
	}
	toolCalls.Add(float64(len(j.calls)))
	j.prior += j.text.String()
	j.text.Reset()
	j.stored, j.delta = 0, ""
	j.calls = nil
	j.steps++
	if end {
		// The turn is finished as a reply without calls (finishJobLocked
		// goes on); the server's tools of the step still run, and their
		// results wait in the history for the next response.
		j.ended = true
		for _, c := range pending {
			if c.By == string(event.ByServer) {
				e.runServerTool(j.session, j.turn, c)
			}
		}
		return true, false
	}
	j.keep = true // the job stays in its hash until the turn is finished
	if len(pending) == 0 {
		return true, true
	}
	e.wait(j, pending)
	return true, false
}

// nameTurn rewrites a job stored by its run (byRun) to name its turn,
// before a tool step that makes the turn wait: a waiting turn has no run,
// so a takeover could not find its turn from the run. Only tool steps pay
// for it, a command. j.mu held.
func (e *Engine) nameTurn(ctx context.Context, j *job, end bool) error {
	if !j.byRun || end {
		return nil
	}
	if err := e.storeJob(ctx, j); err != nil { // the same id: rewritten in place
		return fmt.Errorf("rename job: %w", err)
	}
	j.byRun = false
	return nil
}

// callsClient reports whether any of the calls is the client's.
func callsClient(pending []session.PendingCall) bool {
	for _, c := range pending {
		if c.By == string(event.ByClient) {
			return true
		}
	}
	return false
}

// wait parks j (already in e.waiting) until its pending calls have
// results: the server's tools run now, the client's have ToolTimeout.
// j.mu held.
func (e *Engine) wait(j *job, pending []session.PendingCall) {
	var client []string
	for _, c := range pending {
		if c.By == string(event.ByServer) {
			e.runServerTool(j.session, j.turn, c)
		} else {
			client = append(client, c.ID)
		}
	}
	if len(client) > 0 {
		j.stopWait = e.clk.AfterFunc(e.cfg.ToolTimeout, func() { e.clientTimedOut(j.session, client) })
	}
}

// clientTimedOut answers the client's calls that are still unanswered.
func (e *Engine) clientTimedOut(sessionID string, calls []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out := fmt.Sprintf("error: the client did not answer within %s", e.cfg.ToolTimeout)
	for _, id := range calls {
		if err := e.result(ctx, sessionID, id, out, string(event.ByClient), nil); err != nil && !errors.Is(err, ErrUnknownCall) {
			e.log.Warn("tool timeout", "session", sessionID, "err", err)
		}
	}
}

// runServerTool runs a server tool on a goroutine of its own (it ends
// when the tool returns; the toolbox bounds every call with a deadline)
// and stores its result.
func (e *Engine) runServerTool(sessionID string, turn int64, c session.PendingCall) {
	e.tools.Add(1)
	go func() {
		defer e.tools.Done()
		ctx := e.runCtx
		if ctx == nil {
			ctx = context.Background()
		}
		out, err := e.cfg.Toolbox.Call(ctx, c.Name, json.RawMessage(c.Arguments))
		switch {
		case ctx.Err() != nil:
			return // the replica stops: the wait is taken over with the job
		case errors.Is(err, tools.ErrUnknown):
			out = fmt.Sprintf("error: the tool %q is not available now", c.Name)
		case err != nil:
			out = "error: " + err.Error()
		}
		out = e.capOutput(out)
		done := event.Marshal(event.ToolDone{Turn: turn, CallID: c.ID, Output: out})
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.StoreRetry+5*time.Second)
		defer cancel()
		err = e.durably(sctx, "tool result", func(ctx context.Context) error {
			err := e.result(ctx, sessionID, c.ID, out, string(event.ByServer), done)
			if errors.Is(err, ErrUnknownCall) {
				return nil // answered already (cancelled by an interruption)
			}
			return err
		})
		if err != nil {
			e.log.Error("store tool result", "session", sessionID, "tool", c.Name, "err", err)
		}
	}()
}

// capOutput cuts a tool's output to MaxToolOutput bytes, on a character
// boundary, and says so.
func (e *Engine) capOutput(out string) string {
	if len(out) <= e.cfg.MaxToolOutput {
		return out
	}
	n := e.cfg.MaxToolOutput
	for n > 0 && (out[n]&0xC0) == 0x80 {
		n--
	}
	return out[:n] + fmt.Sprintf("\n[the output was cut: %d bytes of %d]", n, len(out))
}

// ToolResult is the client's answer to one of its tool calls, on whichever
// replica holds its socket. ErrUnknownCall when no call of that id waits
// for the client (never made, answered already, or timed out). When it is
// the turn's last result, the reply goes on (on this replica).
func (e *Engine) ToolResult(ctx context.Context, sessionID, callID, output string) error {
	return e.result(ctx, sessionID, callID, e.capOutput(output), string(event.ByClient), nil)
}

// result stores a call's result and, when it is the turn's last, resumes
// the turn.
func (e *Engine) result(ctx context.Context, sessionID, callID, output, by string, done []byte) error {
	status, turn, at, err := e.store.StoreToolResult(ctx, sessionID, callID, output, by, done)
	if err != nil {
		return err
	}
	switch {
	case status == session.ResultUnknown:
		return ErrUnknownCall
	case status == session.ResultLast && at != "":
		e.resume(ctx, sessionID, turn, at)
	}
	// A last result with no job: its turn ended at its tool step
	// (EndAtClientTools); the next response sees the result.
	return nil
}

// cancelTools answers the session's waiting calls with "cancelled" (an
// interruption) and resumes their turns, which find themselves cut.
func (e *Engine) cancelTools(ctx context.Context, sessionID string) error {
	waits, err := e.store.CancelTools(ctx, sessionID, "cancelled: the user interrupted")
	if err != nil {
		return err
	}
	for _, w := range waits {
		turnStr, at, _ := strings.Cut(w, " ")
		turn, _ := strconv.ParseInt(turnStr, 10, 64)
		e.resume(ctx, sessionID, turn, at)
	}
	return nil
}

// resume queues the next step of a turn whose tool results are all in:
// this replica's waiting job, or the job at at, moved into this
// replica's stream if it was another's.
func (e *Engine) resume(ctx context.Context, sessionID string, turn int64, at string) {
	k := turnKey{sessionID, turn}
	e.mu.Lock()
	j := e.waiting[k]
	delete(e.waiting, k)
	e.mu.Unlock()
	if j == nil {
		var err error
		if j, err = e.fetchJob(ctx, sessionID, turn, at); err != nil {
			e.log.Error("resume a turn after its tool results", "session", sessionID, "turn", turn, "err", err)
			return // the job stays where it is: a takeover or restart finds it
		}
	} else {
		// The step that parked it may still be finishing: wait for it.
		j.mu.Lock()
		if j.stopWait != nil {
			j.stopWait()
		}
		j.mu.Unlock()
	}
	e.requeue(j)
}

// requeue puts a job back in the queue for its next step.
func (e *Engine) requeue(j *job) {
	j.resetStep()
	j.accepted = e.clk.Now()
	j.adopted = true // an accepted turn: not refused for waiting
	e.mu.Lock()
	e.queue = append(e.queue, j)
	queued.Set(float64(len(e.queue)))
	e.mu.Unlock()
	signal(e.wake)
}

// resetStep readies a job for its next step. The job is in no batch and
// no map; the lock is for the last step's first-piece timer, which may
// still be running (it stores nothing once the step is finishing).
// pending is the step's text not yet stored; j.mu held. A view of text's
// buffer: a Builder never changes the bytes it has written.
func (j *job) pending() string { return j.text.String()[j.stored:] }

func (j *job) resetStep() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.text.Reset()
	j.stored = 0
	j.calls = nil
	j.flushed, j.reset, j.keep = false, false, false
	j.firstWait, j.finishing, j.pauses = nil, false, nil
	j.status = 0
	j.stopWait = nil
}

// stopWaits stops the client tools' timers of the waiting turns: the
// replica is stopping, and whoever takes the jobs over re-arms them.
func (e *Engine) stopWaits() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, j := range e.waiting {
		if j.stopWait != nil {
			j.stopWait()
		}
		delete(e.waiting, k)
	}
}

// resumeWait is startJob's, for a turn found waiting for tool results (a
// job taken over, or left by a previous process): the server's tools are
// run again, the client's get their time again.
func (e *Engine) resumeWait(j *job, st session.Started) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.steps, j.prior = st.Steps, priorText(st.History, j.turn)
	j.keep = true
	e.log.Info("a turn waits for tool results", "session", j.session, "turn", j.turn, "calls", len(st.Pending))
	e.mu.Lock()
	e.waiting[turnKey{j.session, j.turn}] = j
	e.mu.Unlock()
	e.wait(j, st.Pending)
}

// priorText is the text of the turn's tool steps so far, from the history.
func priorText(hist []session.Turn, turn int64) string {
	var b strings.Builder
	for _, t := range hist {
		if t.N == turn && t.Role == llm.RoleAssistant && t.ToolCalls != "" {
			b.WriteString(t.Content)
		}
	}
	return b.String()
}
