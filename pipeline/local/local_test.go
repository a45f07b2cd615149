package local

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/pipeline/llm"
)

var fixed = time.Date(2026, 11, 23, 15, 4, 0, 0, time.UTC)

func newFixed() *Responder {
	return New(Config{Now: func() time.Time { return fixed }, Location: time.UTC})
}

func TestReplies(t *testing.T) {
	r := newFixed()
	tests := []struct {
		in, want string
	}{
		{"What time is it?", "It is 3:04 PM."},
		{"what's the date", "Today is Monday, November 23, 2026."},
		{"What day is it today", "Today is Monday, November 23, 2026."},
		{"Hello!", "offline responder"},
		{"good morning", "offline responder"},
		{"help", "not a language model"},
		{"the cat sat on the mat", `You said: "the cat sat on the mat". I'm the offline responder`},
		{"   ", "I didn't catch anything"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := r.Reply(tc.in); !strings.Contains(got, tc.want) {
				t.Fatalf("Reply(%q) = %q, want it to contain %q", tc.in, got, tc.want)
			}
		})
	}
}

func conv(user string) []llm.Message {
	return []llm.Message{{Role: llm.RoleSystem, Content: "sys"}, {Role: llm.RoleUser, Content: user}}
}

func TestBatchStreamsEachReplyWhole(t *testing.T) {
	r := newFixed()
	in := []string{"what time is it", "hello", "echo this please", "date"}
	convs := make([][]llm.Message, len(in))
	for i, s := range in {
		convs[i] = conv(s)
	}
	got := make([]strings.Builder, len(in))
	calls := 0
	if err := r.Stream(context.Background(), requests(convs...), text(func(i int, s string) { got[i].WriteString(s); calls++ })); err != nil {
		t.Fatal(err)
	}
	for i, s := range in {
		if want := r.Reply(s); got[i].String() != want {
			t.Fatalf("conversation %d: streamed %q, want %q", i, got[i].String(), want)
		}
	}
	if calls <= len(in) {
		t.Fatalf("%d pieces for %d replies: the reply must stream in words", calls, len(in))
	}
}

func TestStreamStopsOnCancel(t *testing.T) {
	r := New(Config{TokenDelay: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := r.Stream(ctx, requests(conv("help")), text(func(int, string) {
		n++
		if n == 2 {
			cancel()
		}
	}))
	if err == nil || n > 3 {
		t.Fatalf("after cancel: err %v, %d pieces", err, n)
	}
}

// requests makes a batch of requests of conversations, with no tools.
func requests(convs ...[]llm.Message) []llm.Request {
	reqs := make([]llm.Request, len(convs))
	for i, c := range convs {
		reqs[i] = llm.Request{Messages: c}
	}
	return reqs
}

// text takes the text pieces of a reply.
func text(f func(int, string)) func(int, llm.Piece) {
	return func(i int, p llm.Piece) {
		if p.Text != "" {
			f(i, p.Text)
		}
	}
}
