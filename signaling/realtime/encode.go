package realtime

import (
	"encoding/base64"
	"encoding/json"
	"strconv"

	"github.com/parleyhq/parley/media"
	"github.com/parleyhq/parley/pipeline/event"
)

// response is one response as the client knows it.
type response struct {
	turn   int64
	id     string
	audio  bool   // its output is audio (else text)
	out    format // of its audio
	msg    *item  // its message, once added
	open   bool   // msg's content part is open: deltas go to it
	output []*item
	bytes  int    // audio bytes sent (on WebRTC, as many as in its format)
	played bool   // on WebRTC, its audio began on the track (output_audio_buffer.started)
	sent   string // the message's text sent so far
	cancel string // why it was cut: turn_detected or client_cancelled
	done   bool
}

// maxItems bounds the items a connection remembers (for retrieve,
// truncate and delete); the oldest are forgotten past it.
const maxItems = 1024

// emitLocked sends a server event: its type, a fresh event_id, and kv.
// c.mu held.
func (c *conn) emitLocked(typ string, kv ...any) {
	m := make(map[string]any, len(kv)/2+2)
	c.seq++
	m["type"], m["event_id"] = typ, "event_"+strconv.FormatUint(c.seq, 10)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	b, err := json.Marshal(m)
	if err != nil {
		c.sock.Log().Error("encode event", "type", typ, "err", err)
		return
	}
	c.sock.Send(b)
}

// name is an event's name in the protocol spoken: GA's, or beta's.
func (c *conn) name(ga string) string {
	if !c.beta {
		return ga
	}
	switch ga {
	case "response.output_audio.delta":
		return "response.audio.delta"
	case "response.output_audio.done":
		return "response.audio.done"
	case "response.output_audio_transcript.delta":
		return "response.audio_transcript.delta"
	case "response.output_audio_transcript.done":
		return "response.audio_transcript.done"
	case "response.output_text.delta":
		return "response.text.delta"
	case "response.output_text.done":
		return "response.text.done"
	}
	return ga
}

// stored encodes one of the session's stored (or published) events: the
// feed's encode hook. It sends the frames itself, under c.mu, so that
// they keep their order with the frames the reader and the call send.
func (c *conn) stored(wire []byte) [][]byte {
	_, ev, err := event.Decode(wire)
	if err != nil {
		return nil // a type this protocol does not show
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := event.TurnOf(ev); t > c.lastTurn {
		c.lastTurn = t
	}
	switch e := ev.(type) {
	case event.Transcript:
		if e.Final && e.Turn != 0 {
			c.userItemLocked(e)
		}
	case event.ReplyDelta:
		c.deltaLocked(e)
	case event.ToolCall:
		if e.By == event.ByClient {
			c.toolCallLocked(e)
		}
		// A server's tool (MCP) is the server's business: its call and
		// result stay out of the client's items; the reply goes on.
	case event.Interrupted:
		if r := c.resps[e.Turn]; r != nil && r.cancel == "" {
			r.cancel = c.cutBy
		}
	case event.ReplyDone:
		c.replyDoneLocked(e)
	case event.Error:
		c.errorEventLocked(e)
	}
	return nil
}

// addLocked appends it to the conversation and returns the id of the
// item before it (nil for none).
func (c *conn) addLocked(it *item) any {
	var prev any
	if n := len(c.items); n > 0 {
		prev = c.items[n-1].ID
	}
	c.items = append(c.items, it)
	if len(c.items) > maxItems {
		c.items = append(c.items[:0], c.items[len(c.items)-maxItems:]...)
	}
	return prev
}

// userItemLocked: a user turn was stored (typed, created by the client,
// or spoken and committed).
func (c *conn) userItemLocked(e event.Transcript) {
	it := &item{ID: userItemID(e.Turn), Type: "message", Role: "user", Turn: e.Turn, Status: "completed",
		Text: e.Text, Audio: e.Source == event.SourceVoice}
	if c.find(it.ID) != nil {
		return
	}
	prev := c.addLocked(it)
	if it.Audio {
		c.emitLocked("input_audio_buffer.committed", "item_id", it.ID, "previous_item_id", prev)
	}
	c.itemAddedLocked(it, prev, false)
	c.itemDoneLocked(it, prev)
	if it.Audio && c.conf.transcribe() {
		c.emitLocked("conversation.item.input_audio_transcription.completed",
			"item_id", it.ID, "content_index", 0, "transcript", it.Text)
	}
}

// itemAddedLocked says an item was added: conversation.item.added (GA),
// conversation.item.created (beta). empty: a message with no content yet.
func (c *conn) itemAddedLocked(it *item, prev any, empty bool) {
	if c.beta {
		c.emitLocked("conversation.item.created", "previous_item_id", prev, "item", it.wire(true, empty))
		return
	}
	c.emitLocked("conversation.item.added", "previous_item_id", prev, "item", it.wire(false, empty))
}

// itemDoneLocked says an item is whole (GA only: beta has no such event).
func (c *conn) itemDoneLocked(it *item, prev any) {
	if !c.beta {
		c.emitLocked("conversation.item.done", "previous_item_id", prev, "item", it.wire(false, false))
	}
}

// startLocked is turn's response, begun (response.created) if it was not.
func (c *conn) startLocked(turn int64) *response {
	if r := c.resps[turn]; r != nil {
		return r
	}
	audio, ok := c.modes[turn]
	if !ok {
		audio = c.conf.audio() && c.call != nil // a turn of the call's own
	}
	delete(c.modes, turn)
	r := &response{turn: turn, id: responseID(turn), audio: audio, out: c.conf.Out}
	c.resps[turn] = r
	c.emitLocked("response.created", "response", c.responseWire(r, "in_progress", nil))
	return r
}

// responseWire is the response object.
func (c *conn) responseWire(r *response, status string, details any) map[string]any {
	mods := []string{"text"}
	if r.audio {
		mods = []string{"audio"}
	}
	output := []any{}
	for _, it := range r.output {
		output = append(output, it.wire(c.beta, false))
	}
	m := map[string]any{"id": r.id, "object": "realtime.response", "status": status, "status_details": details,
		"output": output, "conversation_id": "conv_" + c.sessionID, "metadata": nil,
		"usage": map[string]any{"total_tokens": 0, "input_tokens": 0, "output_tokens": 0}}
	if c.beta {
		m["modalities"], m["output_audio_format"], m["voice"] = []string{"text"}, r.out.betaName(), c.conf.Voice
		if r.audio {
			m["modalities"] = []string{"audio", "text"}
		}
		return m
	}
	m["output_modalities"] = mods
	m["audio"] = map[string]any{"output": map[string]any{"format": r.out.ga(), "voice": c.conf.Voice}}
	return m
}

// openLocked adds the response's message and its content part, if not
// yet.
func (c *conn) openLocked(r *response) {
	if r.msg != nil {
		return
	}
	it := &item{ID: assistantItemID(r.turn), Type: "message", Role: "assistant", Turn: r.turn,
		Status: "in_progress", Audio: r.audio, resp: r}
	r.msg, r.open = it, true
	prev := c.addLocked(it)
	r.output = append(r.output, it)
	idx := len(r.output) - 1
	c.emitLocked("response.output_item.added", "response_id", r.id, "output_index", idx, "item", it.wire(c.beta, true))
	c.itemAddedLocked(it, prev, true)
	c.emitLocked("response.content_part.added", "response_id", r.id, "item_id", it.ID, "output_index", idx,
		"content_index", 0, "part", map[string]any{"type": map[bool]string{true: "audio", false: "text"}[r.audio], map[bool]string{true: "transcript", false: "text"}[r.audio]: ""})
}

// index is the message's place in the response's output.
func (r *response) index(it *item) int {
	for i, o := range r.output {
		if o == it {
			return i
		}
	}
	return 0
}

func (c *conn) deltaLocked(e event.ReplyDelta) {
	r := c.startLocked(e.Turn)
	if r.done {
		return
	}
	c.openLocked(r)
	if !r.open {
		return // closed at a tool call: nothing follows in this response
	}
	text := e.Text
	if e.Reset {
		// Another replica took the turn over and started the reply again:
		// what the client has is kept, and only what goes past it is sent
		// (the reply's done event says the whole, as it stands).
		if len(text) <= len(r.sent) || text[:len(r.sent)] != r.sent {
			return
		}
		text = text[len(r.sent):]
	}
	r.sent += text
	r.msg.Text = r.sent
	typ := "response.output_text.delta"
	if r.audio {
		typ = "response.output_audio_transcript.delta"
	}
	c.emitLocked(c.name(typ), "response_id", r.id, "item_id", r.msg.ID, "output_index", r.index(r.msg), "content_index", 0, "delta", text)
}

// closeLocked ends the response's message with text as its whole: the
// done events of its audio, transcript or text, its part, its item.
func (c *conn) closeLocked(r *response, text string, status string) {
	if r.msg == nil || !r.open {
		return
	}
	it := r.msg
	r.open = false
	it.Text, it.Status = text, status
	idx := r.index(it)
	common := []any{"response_id", r.id, "item_id", it.ID, "output_index", idx, "content_index", 0}
	if r.audio {
		c.emitLocked(c.name("response.output_audio.done"), common...)
		c.emitLocked(c.name("response.output_audio_transcript.done"), append(common, "transcript", text)...)
	} else {
		c.emitLocked(c.name("response.output_text.done"), append(common, "text", text)...)
	}
	c.emitLocked("response.content_part.done", append(common, "part", it.contentPart())...)
	c.emitLocked("response.output_item.done", "response_id", r.id, "output_index", idx, "item", it.wire(c.beta, false))
	c.itemDoneLocked(it, c.before(it))
}

// before is the id of the item before it, or nil.
func (c *conn) before(it *item) any {
	for i, o := range c.items {
		if o == it && i > 0 {
			return c.items[i-1].ID
		}
	}
	return nil
}

// toolCallLocked: the model called one of the client's tools. The
// message said before it ends, and the call is a function_call item,
// whole: its added says in_progress and its done completed, so that the
// agents SDK runs the tool once.
func (c *conn) toolCallLocked(e event.ToolCall) {
	r := c.startLocked(e.Turn)
	if r.done {
		return
	}
	if r.msg != nil && r.open {
		c.closeLocked(r, r.sent, "completed")
	}
	it := &item{ID: callItemID(e.CallID), Type: "function_call", Turn: e.Turn, Status: "in_progress",
		CallID: e.CallID, Name: e.Name}
	prev := c.addLocked(it)
	r.output = append(r.output, it)
	idx := len(r.output) - 1
	c.emitLocked("response.output_item.added", "response_id", r.id, "output_index", idx, "item", it.wire(c.beta, false))
	c.itemAddedLocked(it, prev, false)
	common := []any{"response_id", r.id, "item_id", it.ID, "output_index", idx, "call_id", e.CallID}
	c.emitLocked("response.function_call_arguments.delta", append(common, "delta", e.Arguments)...)
	c.emitLocked("response.function_call_arguments.done", append(common, "name", e.Name, "arguments", e.Arguments)...)
	it.Args, it.Status = e.Arguments, "completed"
	c.emitLocked("response.output_item.done", "response_id", r.id, "output_index", idx, "item", it.wire(c.beta, false))
	c.itemDoneLocked(it, prev)
}

// replyDoneLocked: the turn's reply is stored, whole (or cut to what was
// heard): the response ends.
func (c *conn) replyDoneLocked(e event.ReplyDone) {
	r := c.startLocked(e.Turn)
	if r.done {
		return
	}
	if e.Text != "" && r.msg == nil {
		c.openLocked(r)
		c.deltaLocked(event.ReplyDelta{Turn: e.Turn, Text: e.Text})
	}
	status, details := "completed", any(nil)
	itemStatus := "completed"
	if e.Interrupted {
		reason := r.cancel
		if reason == "" {
			reason = "turn_detected"
		}
		status, itemStatus = "cancelled", "incomplete"
		details = map[string]any{"type": "cancelled", "reason": reason}
	}
	text := e.Text
	if r.msg != nil && !r.open {
		text = r.msg.Text // closed at a tool call
	}
	c.closeLocked(r, text, itemStatus)
	c.finishLocked(r, status, details)
}

// finishLocked sends response.done, and then what the truncation the
// client asked for during the response needs.
func (c *conn) finishLocked(r *response, status string, details any) {
	r.done = true
	delete(c.asked, r.turn)
	if len(c.resps) > 64 { // forget the responses long done
		for t, o := range c.resps {
			if o.done && t < r.turn-32 {
				delete(c.resps, t)
			}
		}
	}
	c.emitLocked("response.done", "response", c.responseWire(r, status, details))
	if r.played {
		// The pacer sends at real time, and a reply is done once its last
		// frame is out (or it was cut): the track has stopped. Cut by the
		// caller's voice, its buffer was cleared, as OpenAI's service says
		// (a client's output_audio_buffer.clear says so itself).
		if d, _ := details.(map[string]any); d != nil && d["reason"] == "turn_detected" {
			c.emitLocked("output_audio_buffer.cleared", "response_id", r.id)
		} else {
			c.emitLocked("output_audio_buffer.stopped", "response_id", r.id)
		}
	}
	if c.onDone != nil {
		c.onDone(r)
	}
	c.armLocked()
	if c.limits != nil {
		go c.rateLimits() // a round trip to Redis, not under c.mu; ends when it answers (5 s at most)
	}
}

// errorEventLocked: a turn failed (the model, the queue), or the call
// reports a problem: an error, and a failed response for a turn's.
func (c *conn) errorEventLocked(e event.Error) {
	c.emitLocked("error", "error", errorBody(e.Code, e.Message, "", ""))
	if e.Turn == 0 {
		return
	}
	r := c.startLocked(e.Turn)
	if r.done {
		return
	}
	if r.msg != nil {
		c.closeLocked(r, r.sent, "incomplete")
	}
	c.finishLocked(r, "failed", map[string]any{"type": "failed", "error": errorBody(e.Code, e.Message, "", "")})
}

// audioLocked sends a frame of the spoken reply of turn as an audio delta:
// one 20 ms frame each, as the call's pacer sends it (paced at real time,
// which the agents SDK's truncation counts on).
func (c *conn) audioLocked(turn int64, frame []byte) {
	r := c.resps[turn]
	if r == nil {
		r = c.startLocked(turn)
	}
	if r.done || !r.audio {
		return // the apology, or a frame after the cut: nothing for the client
	}
	c.openLocked(r)
	if !r.open {
		return
	}
	r.bytes += len(frame)
	c.emitLocked(c.name("response.output_audio.delta"), "response_id", r.id, "item_id", r.msg.ID,
		"output_index", r.index(r.msg), "content_index", 0, "delta", base64.StdEncoding.EncodeToString(frame))
}

// trackLocked is audioLocked for a WebRTC call: whether the frame of
// turn goes out on the track (the same frames as audioLocked sends as
// deltas), and output_audio_buffer.started before its first.
func (c *conn) trackLocked(turn int64) bool {
	r := c.resps[turn]
	if r == nil {
		r = c.startLocked(turn)
	}
	if r.done || !r.audio {
		return false
	}
	c.openLocked(r)
	if !r.open {
		return false
	}
	if !r.played {
		r.played = true
		c.emitLocked("output_audio_buffer.started", "response_id", r.id)
	}
	r.bytes += int(r.out.bytesPerMs() * float64(media.FrameDuration.Milliseconds()))
	return true
}

// activeLocked reports whether a response is under way: asked for on
// this connection and not done, or begun and not done.
func (c *conn) activeLocked() bool {
	if len(c.asked) > 0 {
		return true
	}
	for _, r := range c.resps {
		if !r.done {
			return true
		}
	}
	return false
}

// find is the item of id, or nil.
func (c *conn) find(id string) *item {
	for i := len(c.items) - 1; i >= 0; i-- {
		if c.items[i].ID == id {
			return c.items[i]
		}
	}
	return nil
}
