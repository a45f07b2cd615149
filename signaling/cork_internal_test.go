package signaling

import (
	"net"
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
