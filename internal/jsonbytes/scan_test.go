package jsonbytes

import (
	"encoding/json"
	"testing"
)

// What Skip reads whole is valid JSON; a string Str or Raw reads is the
// one encoding/json reads; an int Int reads is encoding/json's int.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e3,true,false,null,"x\u00e9\n"]}`, `"\ud800\u0041"`, "\"\xff\"", `01`, `1.`, `{"a" 1}`, `[1,]`, `"\x"`, `12`, `-7`, `1e2`, `99999999999999999999`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		s := NewScanner(p)
		if s.Skip() && s.Done() && !json.Valid(p) {
			t.Fatalf("%q read whole, and invalid", p)
		}
		s = NewScanner(p)
		if got, ok := s.Str(); ok && s.Done() {
			var want string
			if err := json.Unmarshal(p, &want); err != nil || got != want {
				t.Fatalf("%q: by hand %q, encoding/json %q (%v)", p, got, want, err)
			}
		}
		s = NewScanner(p)
		if raw, ok := s.Raw(); ok && s.Done() {
			var want string
			if err := json.Unmarshal(p, &want); err != nil || string(raw) != want {
				t.Fatalf("%q: in place %q, encoding/json %q (%v)", p, raw, want, err)
			}
		}
		s = NewScanner(p)
		var n int
		if s.Int(&n) && s.Done() {
			var want int
			if err := json.Unmarshal(p, &want); err != nil || n != want {
				t.Fatalf("%q: by hand %d, encoding/json %d (%v)", p, n, want, err)
			}
		}
	})
}
