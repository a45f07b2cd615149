package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// runReplicas measures delivery across replicas: two servers on one
// Redis; each session has one socket on each. Client A (replica 1) sends a
// turn; the turn's transcript event is appended by replica 1 and reaches
// B through replica 2. Reported: send → transcript on A's socket (local)
// and on B's (remote), and, for every event, B's arrival minus A's.
func runReplicas(ctx context.Context, bin string, l textLoad) (*result, error) {
	redisURL, redisPid, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stopRedis()
	env := []string{"REDIS_URL=" + redisURL, "PARLEY_RATE_SESSION=0", "PARLEY_ASR=off"}
	addr1, cmd1, err := startParley(ctx, bin, append(env, "PARLEY_REPLICA_ID=one"))
	if err != nil {
		return nil, err
	}
	defer stopParley(cmd1)
	addr2, cmd2, err := startParley(ctx, bin, append(env, "PARLEY_REPLICA_ID=two"))
	if err != nil {
		return nil, err
	}
	defer stopParley(cmd2)

	var mu sync.Mutex
	var local, remote, skew []time.Duration
	var sent, done, fails, lost int64
	refused := map[string]int64{}
	measure, measure2, measureRedis := watch(cmd1.Process.Pid), watch(cmd2.Process.Pid), watch(redisPid)
	t0 := time.Now()
	stop := t0.Add(l.Duration)
	var wg sync.WaitGroup
	for i := 0; i < l.Clients; i++ {
		wg.Add(1)
		go func() { // one session, two sockets; ends after Duration + Grace
			defer wg.Done()
			time.Sleep(l.Ramp * time.Duration(i) / time.Duration(l.Clients))
			p, err := pairUp(ctx, "ws://"+addr1+"/ws", "ws://"+addr2+"/ws")
			if err != nil {
				mu.Lock()
				fails++
				mu.Unlock()
				return
			}
			defer p.close()
			for k := 0; time.Now().Before(stop) && ctx.Err() == nil; k++ {
				text := "pair " + strconv.Itoa(i) + " turn " + strconv.Itoa(k)
				at := time.Now()
				if p.a.WriteJSON(map[string]any{"type": "text", "text": text}) != nil {
					break
				}
				ta, tb, code, ok := p.turn(text, l.Grace)
				mu.Lock()
				sent++
				if code != "" {
					refused[code]++
				}
				if ok {
					done++
					local = append(local, ta[0].Sub(at))
					remote = append(remote, tb[0].Sub(at))
					for j := range ta {
						skew = append(skew, tb[j].Sub(ta[j]))
					}
				} else if code == "" {
					lost++
				}
				mu.Unlock()
				time.Sleep(time.Until(at.Add(l.Interval)))
			}
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	s1, s2 := measure(), measure2()
	r := &result{
		Scenario: "two replicas, one Redis", Clients: l.Clients, Seconds: round(secs),
		Sent: sent, Done: done, Lost: lost, ConnectFail: fails, Refused: refused,
		Throughput: round(float64(done) / l.Duration.Seconds()),
		FirstDelta: summarize(local, 0), ReplyDone: summarize(remote, 0),
		Server: s1, Redis: measureRedis(),
		Labels: [2]string{"send → transcript, local", "send → transcript, remote"},
	}
	sk := summarize(skew, 0)
	r.Extra = map[string]float64{
		"remote_minus_local_p50_ms": round(sk.P50), "remote_minus_local_p99_ms": round(sk.P99), "remote_minus_local_max_ms": round(sk.Max),
		"replica2_cpu_percent": s2.CPUPercent,
	}
	return r, nil
}

// pair is one session with a socket on each replica.
type pair struct {
	a, b   *websocket.Conn
	ea, eb chan arrival
}

type arrival struct {
	typ, text, code string
	turn            int64
	at              time.Time
}

func pairUp(ctx context.Context, url1, url2 string) (*pair, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	a, _, err := d.DialContext(ctx, url1, nil)
	if err != nil {
		return nil, err
	}
	var s struct{ Type, Session, Token string }
	if err := a.WriteJSON(map[string]any{"type": "hello"}); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.ReadJSON(&s); err != nil || s.Type != "session" {
		a.Close()
		return nil, fmt.Errorf("hello on replica 1: %v %s", err, s.Type)
	}
	b, _, err := d.DialContext(ctx, url2, nil)
	if err != nil {
		a.Close()
		return nil, err
	}
	if err := b.WriteJSON(map[string]any{"type": "hello", "session": s.Session, "token": s.Token}); err != nil {
		a.Close()
		b.Close()
		return nil, err
	}
	var s2 struct{ Type string }
	if err := b.ReadJSON(&s2); err != nil || s2.Type != "session" {
		a.Close()
		b.Close()
		return nil, fmt.Errorf("resume on replica 2: %v %s", err, s2.Type)
	}
	p := &pair{a: a, b: b, ea: make(chan arrival, 64), eb: make(chan arrival, 64)}
	go readArrivals(a, p.ea) // ends when the socket closes
	go readArrivals(b, p.eb)
	return p, nil
}

func readArrivals(ws *websocket.Conn, out chan<- arrival) {
	defer close(out)
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now()
		var ev struct {
			Type, Text, Code string
			Turn             int64
		}
		if json.Unmarshal(msg, &ev) == nil {
			out <- arrival{ev.Type, ev.Text, ev.Code, ev.Turn, now}
		}
	}
}

// turn waits for the turn's events on both sockets, up to its reply.done,
// and returns their arrival times in order (A's and B's, event by event).
func (p *pair) turn(text string, wait time.Duration) (ta, tb []time.Time, code string, ok bool) {
	deadline := time.After(wait)
	collect := func(ch <-chan arrival) ([]time.Time, bool) {
		var at []time.Time
		var turn int64
		for {
			select {
			case ev, open := <-ch:
				if !open {
					return at, false
				}
				if ev.typ == "error" && code == "" {
					code = ev.code // refused or failed: no reply is coming
					return at, false
				}
				if ev.typ == "transcript" && ev.text == text {
					turn = ev.turn
				}
				if turn == 0 || ev.turn != turn {
					continue
				}
				at = append(at, ev.at)
				if ev.typ == "reply.done" {
					return at, true
				}
			case <-deadline:
				return at, false
			}
		}
	}
	ta, oka := collect(p.ea)
	if !oka {
		return ta, nil, code, false
	}
	tb, okb := collect(p.eb)
	return ta, tb, code, okb && len(ta) == len(tb) && len(ta) > 0
}

func (p *pair) close() {
	p.a.Close()
	p.b.Close()
}
