package realtime_test

import (
	"encoding/json"
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
	if !testkit.WithoutAdaptiveStacks(t) {
		return
	}
	s := start(t, local.New(local.Config{}), opts{})
	open := func(int) {
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
				return
			}
		}
	}
	open(0) // the process's first socket starts what every later one shares
	// 200 sockets, and a bound that tells a 2 KB waiter from one grown to
	// 4 or 8 KB; under the race detector frames are larger (make test also
	// runs this test without it).
	bound := map[bool]float64{false: 3400, true: 6144}[testkit.Race]
	testkit.StackPer(t, 200, bound, open)
}
