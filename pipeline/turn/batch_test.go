package turn

import (
	"testing"

	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/session"
)

// The model sees, for turn T, the history up to T in turn order with T's
// own message last, however the history stream interleaved.
func TestConversationForATurn(t *testing.T) {
	e := &Engine{cfg: Config{SystemPrompt: "sys"}}
	hist := []session.Turn{ // as stored: turns 1-3 typed fast, replies finishing out of order
		{Role: llm.RoleUser, Content: "u1", N: 1},
		{Role: llm.RoleUser, Content: "u2", N: 2},
		{Role: llm.RoleUser, Content: "u3", N: 3},
		{Role: llm.RoleAssistant, Content: "a2", N: 2},
		{Role: llm.RoleAssistant, Content: "a1", N: 1},
	}
	tests := []struct {
		turn int64
		want []string
	}{
		{1, []string{"sys", "u1"}},
		{2, []string{"sys", "u1", "a1", "u2"}},
		{3, []string{"sys", "u1", "a1", "u2", "a2", "u3"}},
	}
	for _, tc := range tests {
		t.Run(string(rune('0'+tc.turn)), func(t *testing.T) {
			conv := e.conversation(hist, tc.turn, "sys")
			if len(conv) != len(tc.want) {
				t.Fatalf("got %v", conv)
			}
			for i, m := range conv {
				if m.Content != tc.want[i] {
					t.Fatalf("message %d: %q, want %q (all: %v)", i, m.Content, tc.want[i], conv)
				}
			}
		})
	}
}

func TestClauseEnd(t *testing.T) {
	for text, want := range map[string]bool{
		"Hello.": true, "Hello. ": true, "well,": true, "line\n": true, "what?": true,
		"Hel": false, "3:04 ": false, "": false, "  ": false,
	} {
		if got := clauseEnd(text); got != want {
			t.Errorf("clauseEnd(%q) = %v, want %v", text, got, want)
		}
	}
}

// A history already in turn order (the usual one: each turn's message,
// then its reply) is what the model sees as it is, without a copy.
func TestSeenInOrderCostsNothing(t *testing.T) {
	hist := []session.Turn{
		{Role: llm.RoleUser, Content: "u1", N: 1},
		{Role: llm.RoleAssistant, Content: "a1", N: 1},
		{Role: llm.RoleUser, Content: "u2", N: 2},
	}
	got := seen(hist, 2)
	if len(got) != 3 || &got[0] != &hist[0] {
		t.Fatalf("seen = %v, want the history itself", got)
	}
	if n := testing.AllocsPerRun(100, func() { _ = seen(hist, 2) }); n != 0 {
		t.Fatalf("%v allocations for a history in order", n)
	}
	// Its own reply, stored before a retry, is not seen; the copy is made.
	withReply := append(hist[:3:3], session.Turn{Role: llm.RoleAssistant, Content: "a2", N: 2})
	if got := seen(withReply, 2); len(got) != 3 || got[2].Content != "u2" {
		t.Fatalf("seen = %v", got)
	}
}
