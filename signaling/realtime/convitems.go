package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/parleyhq/parley/pipeline/event"
	"github.com/parleyhq/parley/pipeline/session"
	"github.com/parleyhq/parley/pipeline/turn"
)

// wireItem is an item as a client creates it.
type wireItem struct {
	Type    string `json:"type"`
	Role    string `json:"role"`
	Content []struct {
		Type       string  `json:"type"`
		Text       *string `json:"text"`
		Transcript *string `json:"transcript"`
		Audio      string  `json:"audio"`
	} `json:"content"`
	CallID *string `json:"call_id"`
	Output *string `json:"output"`
}

// itemCreate adds a client's item: a user message (its text, or the
// transcript of its audio), stored as a user item without a reply; or a
// function_call_output, handed to the engine as the call's result. Neither
// starts a response: the client sends response.create.
func (c *conn) itemCreate(ev *clientEvent) {
	var it wireItem
	if isNull(ev.Item) || json.Unmarshal(ev.Item, &it) != nil {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "item", "conversation.item.create needs an \"item\" object")
		return
	}
	switch it.Type {
	case "function_call_output":
		c.toolOutput(ev, &it)
	case "message", "":
		c.userMessage(ev, &it)
	default:
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "item.type",
			fmt.Sprintf("item type %q: a client creates \"message\" (a user's) or \"function_call_output\" items", clip(it.Type, 30)))
	}
}

// userMessage stores a user message's text as an item.
func (c *conn) userMessage(ev *clientEvent, it *wireItem) {
	if it.Role != "user" {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "item.role",
			fmt.Sprintf("a message of role %q: a client adds user messages (instructions are the session's)", clip(it.Role, 20)))
		return
	}
	var parts []string
	source := event.SourceText
	for i, p := range it.Content {
		switch {
		case p.Type == "input_text" && p.Text != nil:
			parts = append(parts, *p.Text)
		case p.Type == "input_audio" && p.Transcript != nil:
			parts, source = append(parts, *p.Transcript), event.SourceVoice
		case p.Type == "input_audio":
			c.fail(ev.EventID, "invalid_request_error", "unsupported", fmt.Sprintf("item.content[%d]", i),
				"an input_audio part needs its \"transcript\": Parley recognises audio sent through input_audio_buffer.append")
			return
		default:
			c.fail(ev.EventID, "invalid_request_error", "invalid_value", fmt.Sprintf("item.content[%d]", i),
				fmt.Sprintf("content part %q: use input_text (with text) or input_audio (with transcript)", clip(p.Type, 30)))
			return
		}
	}
	text, bad := textOf(strings.TrimSpace(strings.Join(parts, " ")), c.srv.cfg.MaxText)
	if bad != "" {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "item.content", bad)
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.srv.turns.AppendItem(ctx, c.sessionID, text, source); err != nil {
		c.turnError(ev.EventID, err)
	}
	// conversation.item.added and .done come with the stored transcript.
}

// toolOutput hands the result of one of the client's tools to the engine.
func (c *conn) toolOutput(ev *clientEvent, it *wireItem) {
	if it.CallID == nil || *it.CallID == "" || it.Output == nil {
		c.fail(ev.EventID, "invalid_request_error", "missing_required_parameter", "item.call_id",
			"a function_call_output needs the \"call_id\" of its call and an \"output\" string")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	err := c.srv.turns.ToolResult(ctx, c.sessionID, *it.CallID, *it.Output)
	switch {
	case errors.Is(err, turn.ErrUnknownCall):
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "item.call_id",
			fmt.Sprintf("no function call %q waits for its output: never made, answered already, or cancelled", clip(*it.CallID, 60)))
		return
	case err != nil:
		c.turnError(ev.EventID, err)
		return
	}
	out := &item{ID: outputItemID(*it.CallID), Type: "function_call_output", Status: "completed", CallID: *it.CallID, Output: *it.Output}
	c.mu.Lock()
	prev := c.addLocked(out)
	c.itemAddedLocked(out, prev, false)
	c.itemDoneLocked(out, prev)
	c.mu.Unlock()
}

func (c *conn) itemID(ev *clientEvent) (string, bool) {
	if ev.ItemID == nil || *ev.ItemID == "" {
		c.fail(ev.EventID, "invalid_request_error", "missing_required_parameter", "item_id", ev.Type+" needs an \"item_id\"")
		return "", false
	}
	return *ev.ItemID, true
}

// itemRetrieve answers with the item as it stands.
func (c *conn) itemRetrieve(ev *clientEvent) {
	id, ok := c.itemID(ev)
	if !ok {
		return
	}
	c.mu.Lock()
	it := c.find(id)
	if it != nil {
		c.emitLocked("conversation.item.retrieved", "item", it.wire(c.beta, false))
	}
	c.mu.Unlock()
	if it == nil {
		c.noItem(ev, id)
	}
}

func (c *conn) noItem(ev *clientEvent, id string) {
	c.fail(ev.EventID, "invalid_request_error", "item_not_found", "item_id", fmt.Sprintf("no item %q in this conversation", clip(id, 60)))
}

// itemTruncate cuts an assistant audio item to what the client played:
// audio_end_ms of the audio sent, and its transcript to the words of
// that much audio (in proportion), in the history too, so the model hears
// what the caller heard. Past the end of the audio sent it is an error
// and the item is left as it is, as OpenAI's service does: a client that
// counts wall-clock time instead of the audio it got learns of it here,
// not from a transcript cut at a place nobody heard.
func (c *conn) itemTruncate(ev *clientEvent) {
	id, ok := c.itemID(ev)
	if !ok {
		return
	}
	if ev.AudioEndMs == nil || *ev.AudioEndMs < 0 {
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "audio_end_ms", "conversation.item.truncate needs \"audio_end_ms\", 0 or more")
		return
	}
	c.mu.Lock()
	it := c.find(id)
	if it == nil || it.Role != "assistant" || !it.Audio || it.resp == nil {
		c.mu.Unlock()
		if it == nil {
			c.noItem(ev, id)
		} else {
			c.fail(ev.EventID, "invalid_request_error", "invalid_value", "item_id", fmt.Sprintf("only model output audio messages can be truncated: %q is not one", clip(id, 60)))
		}
		return
	}
	r := it.resp
	total := float64(r.bytes) / r.out.bytesPerMs()
	end := *ev.AudioEndMs
	if end > total {
		c.mu.Unlock()
		// OpenAI's words, which clients match on ("already shorter").
		c.fail(ev.EventID, "invalid_request_error", "invalid_value", "audio_end_ms", fmt.Sprintf("Audio content of %dms is already shorter than %dms", int64(total), int64(math.Ceil(end))))
		return
	}
	c.emitLocked("conversation.item.truncated", "item_id", id, "content_index", ev.ContentIndex, "audio_end_ms", int64(end))
	text, done, turn := "", r.done, r.turn // read under the lock: the feed finishes responses
	if done {
		it.Text = heardWords(it.Text, end, total)
		text = it.Text
	} else {
		c.truncs[turn] = end // its reply is not stored yet: cut it once it is
	}
	c.mu.Unlock()
	if done {
		c.editReply(turn, text)
	}
}

// applyTruncation is a done response's truncation asked for before it
// was done (finishLocked's hook, c.mu held): the item's text now, the
// history on a goroutine of its own (no round trip under the lock).
func (c *conn) applyTruncation(r *response) {
	end, ok := c.truncs[r.turn]
	if !ok || r.msg == nil {
		return
	}
	delete(c.truncs, r.turn)
	total := float64(r.bytes) / r.out.bytesPerMs()
	r.msg.Text = heardWords(r.msg.Text, end, total)
	text := r.msg.Text
	go c.editReply(r.turn, text) // ends when the store answers (5 s at most)
}

// editReply replaces the stored reply of turn with text (or deletes it).
func (c *conn) editReply(turn int64, text string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.sock.Context()), 5*time.Second)
	defer cancel()
	st := c.srv.sessions.Store
	entries, err := st.HistoryEntries(ctx, c.sessionID)
	if err != nil {
		c.sock.Log().Warn("realtime: truncate", "err", err)
		return
	}
	for _, e := range entries {
		if e.N == turn && e.Role == "assistant" && e.ToolCalls == "" {
			var t *session.Turn
			if text != "" {
				cut := e.Turn
				cut.Content = text
				t = &cut
			}
			if err := st.EditHistory(ctx, c.sessionID, e.ID, t); err != nil {
				c.sock.Log().Warn("realtime: truncate", "err", err)
			}
			return
		}
	}
}

// itemDelete removes an item from the conversation and from the history
// the model sees.
func (c *conn) itemDelete(ev *clientEvent) {
	id, ok := c.itemID(ev)
	if !ok {
		return
	}
	c.mu.Lock()
	it := c.find(id)
	c.mu.Unlock()
	if it == nil {
		c.noItem(ev, id)
		return
	}
	if it.Type == "function_call" {
		c.fail(ev.EventID, "invalid_request_error", "unsupported", "item_id", "a function_call item cannot be deleted (delete its output, or the messages around it)")
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	st := c.srv.sessions.Store
	entries, err := st.HistoryEntries(ctx, c.sessionID)
	if err == nil {
		for _, e := range entries {
			if matches(it, e) {
				if err = st.EditHistory(ctx, c.sessionID, e.ID, nil); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		c.sock.Log().Error("realtime: delete item", "err", err)
		c.sendError(ev.EventID, "server_error", "internal", "", "the item could not be deleted; try again")
		return
	}
	c.mu.Lock()
	for i, o := range c.items {
		if o == it {
			c.items = append(c.items[:i], c.items[i+1:]...)
			break
		}
	}
	c.emitLocked("conversation.item.deleted", "item_id", id)
	c.mu.Unlock()
}

// matches reports whether a history entry is the item's.
func matches(it *item, e session.Entry) bool {
	switch it.Type {
	case "function_call_output":
		return e.CallID == it.CallID
	case "message":
		return e.N == it.Turn && e.Role == it.Role && e.ToolCalls == ""
	}
	return false
}
