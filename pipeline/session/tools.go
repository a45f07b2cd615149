package session

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// PendingCall is a tool call that a turn waits for the result of.
type PendingCall struct {
	ID        string
	Turn      int64
	By        string // "client" or "server"
	Name      string
	Arguments string
}

// record is the call's entry in the meta hash: "<turn> <by> <name>
// <arguments>" (names have no spaces; the scripts read the turn and the
// runner at the start).
func (c PendingCall) record() string {
	return strconv.FormatInt(c.Turn, 10) + " " + c.By + " " + c.Name + " " + c.Arguments
}

func parsePending(id, rec string) PendingCall {
	c := PendingCall{ID: id}
	parts := strings.SplitN(rec, " ", 4)
	if len(parts) == 4 {
		c.Turn, _ = strconv.ParseInt(parts[0], 10, 64)
		c.By, c.Name, c.Arguments = parts[1], parts[2], parts[3]
	}
	return c
}

// ToolOutput is a call's result.
type ToolOutput struct {
	ID, Output string
}

// ToolStep is a turn's reply that ended in tool calls, for StoreToolStep.
type ToolStep struct {
	Turn    int64
	Run     string
	Text    string        // what the model said before its calls
	Calls   string        // the calls, as JSON (an array of llm.ToolCall)
	JobAt   string        // where the turn's job is: a last result requeues it from there
	Events  [][]byte      // the stored forms of the calls' tool.call events
	Pending []PendingCall // the calls that wait for a result
	Results []ToolOutput  // the results known at once
	// End: the step ends the turn. The run keeps the turn (FinishReply
	// stores its reply.done), no job waits, and each pending call's result
	// is stored when it comes, for the next response to see.
	End bool
}

var toolStepScript = redis.NewScript(doneLua + fanoutLua + lua("toolstep.lua"))

// StoreToolStep stores a tool step of a turn's reply (see toolstep.lua):
// Appended, Stale (another run owns the turn, or it has its reply) or
// Cut.
func (s *Store) StoreToolStep(ctx context.Context, id string, st ToolStep) (AppendStatus, error) {
	args := []any{s.ttl, s.cfg.MaxEvents, s.cfg.MaxHistory, s.pub, st.Turn, st.Run, st.Text, st.Calls, st.JobAt, len(st.Events)}
	for _, e := range st.Events {
		args = append(args, string(e))
	}
	args = append(args, len(st.Pending))
	for _, c := range st.Pending {
		args = append(args, c.ID, c.record())
	}
	args = append(args, len(st.Results))
	for _, r := range st.Results {
		args = append(args, r.ID, r.Output)
	}
	end := "0"
	if st.End {
		end = "1"
	}
	args = append(args, end, s.replica, s.keyOf(ctx))
	res, err := toolStepScript.Run(ctx, s.rdb, s.writeKeys(id), args...).Result()
	if err != nil {
		s.lost(id)
		return 0, fmt.Errorf("session: tool step: %w", err)
	}
	// 0 or -1 alone; 1 with the events' ids, or alone when the step was
	// stored by a run of this call whose reply was lost: the sockets then
	// read the log.
	if n, ok := res.(int64); ok {
		if AppendStatus(n) == Appended {
			s.lost(id)
		}
		return AppendStatus(n), nil
	}
	vs, _ := res.([]any)
	if len(vs) < 2 {
		return 0, fmt.Errorf("session: tool step: %v from the script", res)
	}
	s.delivered(id, vs[1].(string), stringsOf(vs[2:]), st.Events...)
	return Appended, nil
}

var toolResultScript = redis.NewScript(fanoutLua + requestedLua + lua("toolresult.lua"))

// Results of StoreToolResult.
const (
	ResultUnknown = 0 // no call of that id waits for a result from that runner
	ResultStored  = 1 // stored; the turn waits for more
	ResultLast    = 2 // stored, and the turn has all its results: requeue its job
)

// StoreToolResult stores the result of call callID from runner by
// ("client" or "server"), with done (a tool.done event's stored form, or
// nil) in the log. It returns what it did, the call's turn, and with
// ResultLast where the turn's job is.
func (s *Store) StoreToolResult(ctx context.Context, id, callID, output, by string, done []byte) (status int, turn int64, jobAt string, err error) {
	res, err := toolResultScript.Run(ctx, s.rdb, s.writeKeys(id),
		s.ttl, s.cfg.MaxEvents, s.cfg.MaxHistory, s.pub, callID, output, by, string(done), s.replica, s.keyOf(ctx)).Slice()
	if err != nil {
		s.lost(id)
		return 0, 0, "", fmt.Errorf("session: tool result: %w", err)
	}
	if len(res) > 4 {
		if eid, _ := res[3].(string); eid != "" {
			prev, _ := res[4].(string)
			s.delivered(id, prev, []string{eid}, done)
		} else if len(done) > 0 {
			s.lost(id) // stored by a run whose reply was lost: the sockets read the log
		}
	}
	status = int(res[0].(int64))
	if len(res) > 1 {
		turn, _ = res[1].(int64)
	}
	if len(res) > 2 {
		jobAt, _ = res[2].(string)
	}
	return status, turn, jobAt, nil
}

var toolCancelScript = redis.NewScript(lua("toolcancel.lua"))

// CancelTools answers every call the session waits for with output, and
// returns the turns that waited, each as "<turn> <where its job is>".
func (s *Store) CancelTools(ctx context.Context, id, output string) ([]string, error) {
	jobs, err := toolCancelScript.Run(ctx, s.rdb, []string{s.histKey(id), s.metaKey(id)}, s.cfg.MaxHistory, output).StringSlice()
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("session: cancel tools: %w", err)
	}
	return jobs, nil
}
