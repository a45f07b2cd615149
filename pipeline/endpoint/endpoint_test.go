package endpoint

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	e := New(Config{})
	tests := []struct {
		text string
		why  Why
		wait time.Duration
	}{
		{"", NoWords, 600 * time.Millisecond},
		{"  ...  ", NoWords, 600 * time.Millisecond},
		{"what time is it", Question, 300 * time.Millisecond},
		{"What time is it?", Question, 300 * time.Millisecond},
		{"is it raining in paris", Question, 300 * time.Millisecond},
		{"the weather tomorrow?", Question, 300 * time.Millisecond},
		{"what is", Unfinished, 1200 * time.Millisecond},
		{"I want to", Unfinished, 1200 * time.Millisecond},
		{"I want to book a table", Request, 1200 * time.Millisecond},
		{"I'd like a coffee", Request, 1200 * time.Millisecond},
		{"I want to book a table for two people at eight", Statement, 600 * time.Millisecond},
		{"my name is", Unfinished, 1200 * time.Millisecond},
		{"tell me about the", Unfinished, 1200 * time.Millisecond},
		{"coffee and", Unfinished, 1200 * time.Millisecond},
		{"so um", Unfinished, 1200 * time.Millisecond},
		{"my number is five five five", Dictation, 1200 * time.Millisecond},
		{"the code is 4", Dictation, 1200 * time.Millisecond},
		{"one two", Dictation, 1200 * time.Millisecond},
		{"yes", Reply, 300 * time.Millisecond},
		{"Thank you.", Reply, 300 * time.Millisecond},
		{"never mind", Reply, 300 * time.Millisecond},
		{"my name is john", Statement, 600 * time.Millisecond},
		{"paris", Statement, 600 * time.Millisecond},
		{"I'm at home", Statement, 600 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			d := e.Decide(tc.text)
			if d.Why != tc.why || d.Wait != tc.wait {
				t.Fatalf("%q: %v %v, want %v %v", tc.text, d.Why, d.Wait, tc.why, tc.wait)
			}
		})
	}
}

func TestMaxBoundsEveryWait(t *testing.T) {
	e := New(Config{Long: 5 * time.Second, Max: 1500 * time.Millisecond})
	if d := e.Decide("I want to"); d.Wait != 1500*time.Millisecond {
		t.Fatalf("wait %v, want Max", d.Wait)
	}
}

func TestEagerness(t *testing.T) {
	for _, tc := range []struct {
		eagerness string
		question  time.Duration
		unfinish  time.Duration
	}{
		{"high", 200 * time.Millisecond, 800 * time.Millisecond},
		{"medium", 300 * time.Millisecond, 1200 * time.Millisecond},
		{"auto", 300 * time.Millisecond, 1200 * time.Millisecond},
		{"low", 500 * time.Millisecond, 2 * time.Second},
	} {
		t.Run(tc.eagerness, func(t *testing.T) {
			e := New(Eagerness(tc.eagerness))
			if d := e.Decide("what time is it"); d.Wait != tc.question {
				t.Errorf("question: %v", d.Wait)
			}
			if d := e.Decide("and"); d.Wait != tc.unfinish {
				t.Errorf("unfinished: %v", d.Wait)
			}
		})
	}
}

func FuzzDecide(f *testing.F) {
	for _, s := range []string{"", "what time is it", "I want to", "5 5 5", "é'ü?"} {
		f.Add(s)
	}
	e := New(Config{})
	f.Fuzz(func(t *testing.T, s string) {
		d := e.Decide(s)
		if d.Wait <= 0 || d.Wait > e.Config().Max {
			t.Fatalf("%q: wait %v", s, d.Wait)
		}
	})
}
