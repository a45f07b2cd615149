package signaling

import (
	"testing"
	"time"
)

// A socket gives its reading goroutine back after 5 s of quiet unless
// told otherwise (the tests that see it happen set it shorter).
func TestQuietAfterDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   time.Duration
		want time.Duration
	}{
		{"zero, the default", 0, 5 * time.Second},
		{"negative", -time.Second, 5 * time.Second},
		{"set", 20 * time.Millisecond, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{QuietAfter: tc.in}
			c.setDefaults()
			if c.QuietAfter != tc.want {
				t.Fatalf("QuietAfter %v, want %v", c.QuietAfter, tc.want)
			}
		})
	}
}

// The sockets' clocks by default, which clock_test.go shortens to see
// them run.
func TestClockDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	for _, tc := range []struct {
		name      string
		got, want time.Duration
	}{
		{"PingInterval", c.PingInterval, 30 * time.Second},
		{"ReadTimeout", c.ReadTimeout, 75 * time.Second},
		{"WriteTimeout", c.WriteTimeout, 10 * time.Second},
		{"HelloTimeout", c.HelloTimeout, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("%s %v, want %v", tc.name, tc.got, tc.want)
			}
		})
	}
}
