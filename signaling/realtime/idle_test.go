package realtime_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleyhq/parley/internal/testkit"
	"github.com/parleyhq/parley/pipeline/local"
)

// A Realtime socket that has its session and is then idle (a client
// waiting for its user) keeps one goroutine on Go's smallest stack, 2 KB,
// as a Parley one does: the session is made on the HTTP handler's
// goroutine, not on the one the socket keeps (signaling.Socket's shallow
// wait), which its deep calls would have grown to 8 KB.
func TestIdleRealtimeSocketsKeepSmallStacks(t *testing.T) {
	// Go starts a goroutine on the average stack of the last collection
	// (adaptivestackstart), which in a test binary, with few goroutines
	// and deep ones, is 4 KB: the test runs itself again with that off, to
	// see what the sockets' own frames need.
	if os.Getenv("PARLEY_STACK_TEST") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleRealtimeSocketsKeepSmallStacks$", "-test.v")
		cmd.Env = append(os.Environ(), "PARLEY_STACK_TEST=1", "GODEBUG=adaptivestackstart=0")
		out, err := cmd.CombinedOutput()
		t.Logf("%s", out)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	s := start(t, local.New(local.Config{}), opts{})
	open := func() *websocket.Conn {
		ws, _, err := websocket.DefaultDialer.Dial(s.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		// Read on the test's goroutine: a reading goroutine per client
		// would be counted with the server's.
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var e struct{ Type string }
			_ = json.Unmarshal(data, &e)
			if e.Type == "session.created" {
				return ws
			}
		}
	}
	open() // the process's first socket starts what every later one shares
	// 200 sockets: the stack caches of Go's Ps hold up to 256 KB that the
	// difference counts; the bound tells a 2 KB waiter from one grown to 4
	// or 8 KB. Under the race detector frames are larger (make test also
	// runs this test without it).
	const n = 200
	bound := map[bool]float64{false: 3400, true: 6144}[testkit.Race]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		open()
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
		if per <= bound {
			t.Logf("%.0f B of stack per idle socket", per)
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%.0f B of stack per idle socket, more than %.0f; want 2 KB (one goroutine on Go's smallest stack)", per, bound)
		}
	}
}
