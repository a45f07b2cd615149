package realtime_test

import (
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/ratelimit"
	"github.com/parleyhq/parley/pipeline/turn"
)

// The session's turn rate: rate_limits.updated after each response, from
// its bucket; a response past it is refused with an error that names the
// response.create (the agents SDK waits for it), and the session goes on.
func TestRateLimits(t *testing.T) {
	// A rate with no refill within the test, and a burst of two: the
	// default (1 a second, burst 5) would take seconds to run out.
	s := start(t, &fakes.Echo{}, opts{engine: turn.Config{SessionRate: ratelimit.Rule{Rate: 0.001, Burst: 2}}})
	c := connect(t, s)
	item := func(text string) {
		c.send(map[string]any{"type": "conversation.item.create", "item": map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": text}}}})
	}
	var remaining []float64
	for i, text := range []string{"one", "two"} {
		item(text)
		c.send(map[string]any{"type": "response.create"})
		_, rl := c.wait(0, "rate limits", func(e ev) bool { return e.typ() == "rate_limits.updated" && len(remaining) == i })
		lim := rl.get("rate_limits").([]any)[0].(map[string]any)
		if lim["name"] != "requests" || lim["limit"] != 2.0 {
			t.Fatalf("rate_limits %v", rl)
		}
		remaining = append(remaining, lim["remaining"].(float64))
		c.mu.Lock()
		c.evs = nil
		c.mu.Unlock()
	}
	if remaining[0] != 1 || remaining[1] != 0 {
		t.Fatalf("remaining %v, want [1 0]", remaining)
	}
	item("three")
	id := c.send(map[string]any{"type": "response.create"})
	e := c.errorFor(id)
	if e.str("error.code") != "rate_limit_exceeded" || e.str("error.type") != "invalid_request_error" || !strings.Contains(e.str("error.message"), "retry after") {
		t.Fatalf("error %v", e)
	}
	c.send(map[string]any{"type": "conversation.item.retrieve", "item_id": "item_u3"})
	c.waitType(0, "conversation.item.retrieved")
}
