package realtime

import (
	"strconv"
	"strings"
)

// item is one conversation item as the client knows it.
type item struct {
	ID     string
	Type   string // message, function_call, function_call_output
	Role   string // of a message: user or assistant
	Turn   int64
	Status string // completed, incomplete, in_progress
	Text   string // a message's text or transcript
	Audio  bool   // a message's content is audio (input_audio, output_audio)
	CallID string
	Name   string
	Args   string
	Output string
	resp   *response // an assistant message's response
}

// The ids, derived from what every replica reads in the session's log:
// the turn of a user item or a response, the call id of a tool call.
func userItemID(turn int64) string      { return "item_u" + strconv.FormatInt(turn, 10) }
func assistantItemID(turn int64) string { return "item_a" + strconv.FormatInt(turn, 10) }
func responseID(turn int64) string      { return "resp_" + strconv.FormatInt(turn, 10) }
func callItemID(callID string) string   { return "item_" + callID }
func outputItemID(callID string) string { return "item_out_" + callID }

// wire is the item as the client parses it. Every message has a role and
// a content array; audio parts carry a transcript key (null before it is
// known), text parts a text key: the agents SDK throws on an item without
// them. empty sends a message's content as [] (an item just added).
func (it *item) wire(beta, empty bool) map[string]any {
	m := map[string]any{"id": it.ID, "object": "realtime.item", "type": it.Type, "status": it.Status}
	switch it.Type {
	case "function_call":
		m["call_id"], m["name"], m["arguments"] = it.CallID, it.Name, it.Args
		return m
	case "function_call_output":
		m["call_id"], m["output"] = it.CallID, it.Output
		return m
	}
	m["role"] = it.Role
	content := []any{}
	if !empty {
		content = append(content, it.part(beta))
	}
	m["content"] = content
	return m
}

// part is a message's one content part.
func (it *item) part(beta bool) map[string]any {
	switch {
	case it.Role == "user" && it.Audio:
		var tr any = it.Text
		if it.Text == "" {
			tr = nil
		}
		return map[string]any{"type": "input_audio", "transcript": tr}
	case it.Role == "user":
		return map[string]any{"type": "input_text", "text": it.Text}
	case it.Audio && beta:
		return map[string]any{"type": "audio", "transcript": it.Text}
	case it.Audio:
		return map[string]any{"type": "output_audio", "transcript": it.Text}
	case beta:
		return map[string]any{"type": "text", "text": it.Text}
	}
	return map[string]any{"type": "output_text", "text": it.Text}
}

// contentPart is a response.content_part's part: text or audio.
func (it *item) contentPart() map[string]any {
	if it.Audio {
		return map[string]any{"type": "audio", "transcript": it.Text}
	}
	return map[string]any{"type": "text", "text": it.Text}
}

// heardWords is the start of text that audio of heard ms out of total
// carries, in whole words, in proportion.
func heardWords(text string, heard, total float64) string {
	if total <= 0 || heard >= total {
		return text
	}
	words := strings.Fields(text)
	n := int(float64(len(words)) * heard / total)
	return strings.Join(words[:max(0, n)], " ")
}
