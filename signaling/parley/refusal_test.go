package parley

import (
	"testing"

	"github.com/parleyhq/parley/pipeline/event"
)

// The busy refusals of an overload are one error again and again: its
// wire form is made once and shared, and a different error gets its own.
func TestTurnErrorWireReused(t *testing.T) {
	var s Server
	busy := event.Error{Code: event.CodeBusy, Message: "all slots are taken", RetryAfterMs: 1000}
	first := s.turnErrorWire(busy)
	if string(first) != string(event.Marshal(busy)) {
		t.Fatalf("wire %s, want %s", first, event.Marshal(busy))
	}
	if again := s.turnErrorWire(busy); &again[0] != &first[0] {
		t.Fatal("the same error was marshalled again")
	}
	limited := event.Error{Code: event.CodeRateLimited, Message: "slow down", RetryAfterMs: 200}
	if got := s.turnErrorWire(limited); string(got) != string(event.Marshal(limited)) {
		t.Fatalf("wire %s, want %s", got, event.Marshal(limited))
	}
	if string(first) != string(event.Marshal(busy)) {
		t.Fatal("a wire form handed out was changed")
	}
}
