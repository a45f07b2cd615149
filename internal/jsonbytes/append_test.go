package jsonbytes

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendIsMarshal(t *testing.T) {
	strs := []string{"", "plain", `a "quote" \ back`, "<b> & </b>", "\n\r\t\b\f\x00\x01\x1f\x7f",
		"\u2028\u2029", "é 你好 😀", "bad \xff\xe4\xbd utf-8", strings.Repeat("long ", 200)}
	for _, s := range strs {
		t.Run("string "+s[:min(len(s), 12)], func(t *testing.T) {
			if got, want := string(AppendString(nil, s)), marshal(t, s); got != want {
				t.Fatalf("by hand %s, encoding/json %s", got, want)
			}
		})
	}
	for _, f := range []float64{0, 1, -1, 0.7, 1e-7, -2.5e-9, 1e20, 1e21, 2.5e21, math.MaxFloat64, math.SmallestNonzeroFloat64} {
		got, err := AppendFloat(nil, f)
		if want := marshal(t, f); err != nil || string(got) != want {
			t.Fatalf("%v: by hand %s (%v), encoding/json %s", f, got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(-1)} {
		if _, err := AppendFloat(nil, f); err == nil {
			t.Fatalf("%v written as a number", f)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"<\\>&\x00\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(AppendString(nil, s)), marshal(t, s); got != want {
			t.Fatalf("%q: by hand %s, encoding/json %s", s, got, want)
		}
	})
}
