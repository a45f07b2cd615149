package signaling

import (
	"net"
	"strings"
	"testing"
	"time"
)

// deadlineConn records the write deadlines set on it.
type deadlineConn struct {
	net.Conn
	set []time.Time
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.set = append(c.set, t)
	return nil
}

// A busy socket's frames do not each reset the connection's write
// deadline: one is kept while it leaves at least half the time a write
// asks for, and one brought forward (a close ending a stuck write) or
// cleared always goes through.
func TestCorkConnWriteDeadline(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		before time.Time // the deadline already set; zero: none
		next   time.Time
		passed bool
	}{
		{"the first", time.Time{}, now.Add(10 * time.Second), true},
		{"pushed back a little", now.Add(9 * time.Second), now.Add(10 * time.Second), false},
		{"under half of it left", now.Add(4 * time.Second), now.Add(10 * time.Second), true},
		{"already passed", now.Add(-time.Second), now.Add(10 * time.Second), true},
		{"brought forward", now.Add(10 * time.Second), now, true},
		{"cleared", now.Add(10 * time.Second), time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dc := &deadlineConn{}
			c := &corkConn{Conn: dc}
			if !tc.before.IsZero() {
				_ = c.SetWriteDeadline(tc.before)
			}
			dc.set = nil
			_ = c.SetWriteDeadline(tc.next)
			if got := len(dc.set) == 1 && dc.set[0].Equal(tc.next); got != tc.passed {
				t.Fatalf("deadline set on the connection: %v, want %v (set %v)", got, tc.passed, dc.set)
			}
		})
	}
}

// writesConn records each write made on it.
type writesConn struct {
	net.Conn
	writes []string
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func (c *writesConn) SetWriteDeadline(time.Time) error { return nil }

// Frames written while corked go out in one write at the uncork, and the
// socket keeps no buffer between corks (an idle socket's memory); frames
// written uncorked go out as they come.
func TestCorkConnGathers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		corked bool
		frames []string
		want   []string
	}{
		{"corked", true, []string{"a", "bc", "d"}, []string{"abcd"}},
		{"corked, nothing written", true, nil, nil},
		{"uncorked", false, []string{"a", "bc"}, []string{"a", "bc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wc := &writesConn{}
			c := &corkConn{Conn: wc}
			for round := 0; round < 2; round++ { // the second from a pooled buffer
				wc.writes = nil
				if tc.corked {
					c.cork()
				}
				for _, f := range tc.frames {
					if _, err := c.Write([]byte(f)); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.uncork(time.Second); err != nil {
					t.Fatal(err)
				}
				if strings.Join(wc.writes, "|") != strings.Join(tc.want, "|") {
					t.Fatalf("round %d: writes %q, want %q", round, wc.writes, tc.want)
				}
				if c.buf != nil {
					t.Fatalf("round %d: the connection keeps a buffer after the uncork", round)
				}
			}
		})
	}
}
