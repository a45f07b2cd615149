package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// textLoad is the seed scenario's client side: each client says hello,
// then sends a turn every Interval, open loop, and times each turn from
// "text" sent to its first reply.delta and to its reply.done.
type textLoad struct {
	URL      string
	Clients  int
	Interval time.Duration
	Duration time.Duration
	Grace    time.Duration // after Duration, for replies still under way
	Ramp     time.Duration // clients connect spread over this
	// Series: the result also counts answered and refused turns second by
	// second (the overload scenario's recovery).
	Series bool
}

type result struct {
	Scenario    string             `json:"scenario"`
	Clients     int                `json:"clients"`
	Seconds     float64            `json:"seconds"`
	Sent        int64              `json:"turns_sent"`
	Done        int64              `json:"turns_done"`
	Lost        int64              `json:"turns_lost"` // sent, accepted, never answered
	Refused     map[string]int64   `json:"errors_by_code"`
	Disconnects int64              `json:"disconnects"`
	ConnectFail int64              `json:"connect_failures"`
	Throughput  float64            `json:"turns_per_second"`
	FirstDelta  stats              `json:"first_delta_ms"`
	ReplyDone   stats              `json:"reply_done_ms"`
	Server      *procStats         `json:"server,omitempty"`
	Redis       *procStats         `json:"redis,omitempty"`
	Load        *procStats         `json:"load_generator,omitempty"`
	Extra       map[string]float64 `json:"extra,omitempty"`
	// With textLoad.Series: turns answered and refused in each second of
	// the run, from its start.
	AnsweredEach []int `json:"answered_each_second,omitempty"`
	RefusedEach  []int `json:"refused_each_second,omitempty"`
	// What FirstDelta and ReplyDone measure, when not the seed's figures.
	Labels [2]string `json:"-"`
}

type stats struct {
	N                  int                `json:"n"`
	P50, P95, P99, Max float64            `json:"-"`
	Values             map[string]float64 `json:"ms"`
}

func summarize(d []time.Duration, minus time.Duration) stats {
	if len(d) == 0 {
		return stats{Values: map[string]float64{}}
	}
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = float64(x-minus) / float64(time.Millisecond)
	}
	sort.Float64s(v)
	q := func(p float64) float64 { return v[int(math.Min(float64(len(v)-1), math.Ceil(p*float64(len(v)))-1))] }
	s := stats{N: len(v), P50: q(.50), P95: q(.95), P99: q(.99), Max: v[len(v)-1]}
	s.Values = map[string]float64{"p50": round(s.P50), "p95": round(s.P95), "p99": round(s.P99), "max": round(s.Max)}
	return s
}

// perSecond counts the times in each second from t0.
func perSecond(t0 time.Time, ts []time.Time) []int {
	var out []int
	for _, t := range ts {
		if t.Before(t0) {
			continue
		}
		k := int(t.Sub(t0) / time.Second)
		for len(out) <= k {
			out = append(out, 0)
		}
		out[k]++
	}
	return out
}

func round(x float64) float64 { return math.Round(x*100) / 100 }

type collector struct {
	mu          sync.Mutex
	first, done []time.Duration
	doneAt      []time.Time // with Series: when each reply.done came
	refusedAt   []time.Time // with Series: when each refusal came
	refused     map[string]int64
	sent, fin   atomic.Int64
	finInWindow atomic.Int64 // answered before the sending stopped
	lost        atomic.Int64
	disconnects atomic.Int64
	connectFail atomic.Int64
}

func (l textLoad) run(ctx context.Context) *collector {
	col := &collector{refused: map[string]int64{}}
	stop := time.Now().Add(l.Duration)
	var wg sync.WaitGroup
	for i := 0; i < l.Clients; i++ {
		wg.Add(1)
		go func() { // one client; ends after Duration + Grace
			defer wg.Done()
			if l.Ramp > 0 {
				time.Sleep(l.Ramp * time.Duration(i) / time.Duration(l.Clients))
			}
			l.client(ctx, i, stop, col)
		}()
	}
	wg.Wait()
	return col
}

type turnState struct {
	sent       time.Time
	firstDelta bool
}

func (l textLoad) client(ctx context.Context, id int, stop time.Time, col *collector) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, NetDialContext: (&net.Dialer{}).DialContext}
	ws, _, err := d.DialContext(ctx, l.URL, nil)
	if err != nil {
		col.connectFail.Add(1)
		return
	}
	defer ws.Close()
	var wmu sync.Mutex
	write := func(v any) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return ws.WriteJSON(v)
	}
	writeFrame := func(b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return ws.WriteMessage(websocket.TextMessage, b)
	}
	var frame []byte
	if write(map[string]any{"type": "hello"}) != nil {
		col.connectFail.Add(1)
		return
	}
	var mu sync.Mutex
	byText := map[string]time.Time{} // sent, not yet numbered
	byTurn := map[int64]*turnState{} // numbered, not yet done
	readDone := make(chan struct{})
	go func() { // the reader: ends when the socket closes
		defer close(readDone)
		var buf []byte
		for {
			b, err := readFrame(ws, buf)
			buf = b
			if err != nil {
				if time.Now().Before(stop) {
					col.disconnects.Add(1)
				}
				return
			}
			var ev textEvent
			if !ev.decode(b) {
				continue
			}
			now := time.Now()
			mu.Lock()
			switch ev.Type {
			case "transcript":
				if t, ok := byText[ev.Text]; ok && ev.Final {
					delete(byText, ev.Text)
					byTurn[ev.Turn] = &turnState{sent: t}
				}
			case "reply.delta":
				if ts := byTurn[ev.Turn]; ts != nil && !ts.firstDelta {
					ts.firstDelta = true
					col.mu.Lock()
					col.first = append(col.first, now.Sub(ts.sent))
					col.mu.Unlock()
				}
			case "reply.done":
				if ts := byTurn[ev.Turn]; ts != nil {
					delete(byTurn, ev.Turn)
					col.fin.Add(1)
					if now.Before(stop) {
						col.finInWindow.Add(1)
					}
					col.mu.Lock()
					col.done = append(col.done, now.Sub(ts.sent))
					if l.Series {
						col.doneAt = append(col.doneAt, now)
					}
					col.mu.Unlock()
				}
			case "error":
				col.mu.Lock()
				col.refused[ev.Code]++
				if l.Series {
					col.refusedAt = append(col.refusedAt, now)
				}
				col.mu.Unlock()
				if ev.Turn != 0 {
					delete(byTurn, ev.Turn) // accepted, then failed: answered with an error
				} else if ev.Code == "rate_limited" || ev.Code == "busy" {
					// Refused before it was stored: forget the oldest unnumbered.
					var oldest string
					var ot time.Time
					for k, t := range byText {
						if oldest == "" || t.Before(ot) {
							oldest, ot = k, t
						}
					}
					delete(byText, oldest)
				}
			}
			mu.Unlock()
		}
	}()
	tick := time.NewTicker(l.Interval)
	defer tick.Stop()
	for k := 0; time.Now().Before(stop); k++ {
		text := "client " + strconv.Itoa(id) + " turn " + strconv.Itoa(k)
		mu.Lock()
		byText[text] = time.Now()
		mu.Unlock()
		// The frame written by hand: the load generator shares the cores
		// with the server, so its cost per turn is the benchmark's (the
		// text is letters, digits and spaces: nothing to escape).
		frame = append(append(append(frame[:0], `{"type":"text","text":"`...), text...), `"}`...)
		if writeFrame(frame) != nil {
			break
		}
		col.sent.Add(1)
		select {
		case <-tick.C:
		case <-readDone:
			return
		case <-ctx.Done():
			return
		}
	}
	// Wait for the last replies, then count what never came.
	deadline := time.After(l.Grace)
	for {
		mu.Lock()
		pending := len(byTurn) + len(byText)
		mu.Unlock()
		if pending == 0 {
			break
		}
		select {
		case <-deadline:
			mu.Lock()
			col.lost.Add(int64(len(byTurn) + len(byText)))
			mu.Unlock()
			return
		case <-readDone:
			mu.Lock()
			col.lost.Add(int64(len(byTurn) + len(byText)))
			mu.Unlock()
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = write(map[string]any{"type": "bye"})
}

// idleLoad holds Clients sessions open, doing nothing but answering pings.
func idleLoad(ctx context.Context, url string, clients int, hold time.Duration, measure func()) *collector {
	col := &collector{refused: map[string]int64{}}
	var measured atomic.Bool
	var wg sync.WaitGroup
	conns := make(chan *websocket.Conn, clients)
	sem := make(chan struct{}, 200) // dial 200 at a time
	for i := 0; i < clients; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
			if err != nil {
				col.connectFail.Add(1)
				return
			}
			_ = ws.WriteJSON(map[string]any{"type": "hello"})
			_, _, err = ws.ReadMessage() // the session reply
			if err != nil {
				col.connectFail.Add(1)
				ws.Close()
				return
			}
			conns <- ws
			go func() { // answers pings (inside ReadMessage); ends when closed
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						if !measured.Load() {
							col.disconnects.Add(1) // closed by the server while it should be idle
						}
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	close(conns)
	time.Sleep(hold)
	measure()
	measured.Store(true)
	for ws := range conns {
		ws.Close()
	}
	return col
}

// procStats is the server's CPU and memory, from /proc.
type procStats struct {
	CPUPercent float64 `json:"cpu_percent"` // of one core, averaged over the run
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	RSSMB      float64 `json:"rss_mb"`
}

func cpuTicks(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command (which may hold spaces) start after ")".
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return u + s
}

func memKB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v
		}
	}
	return 0
}

// watch samples pid; stop returns its CPU % (of one core) and memory.
func watch(pid int) (stop func() *procStats) {
	if pid <= 0 {
		return func() *procStats { return nil }
	}
	t0, c0 := time.Now(), cpuTicks(pid)
	return func() *procStats {
		secs := time.Since(t0).Seconds()
		const hz = 100 // USER_HZ on Linux
		return &procStats{
			CPUPercent: round((cpuTicks(pid) - c0) / hz / secs * 100),
			PeakRSSMB:  round(memKB(pid, "VmHWM") / 1024),
			RSSMB:      round(memKB(pid, "VmRSS") / 1024),
		}
	}
}
