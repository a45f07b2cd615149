package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The soak scenario: clients come and go at random for a long time, some
// resuming sessions that others left, some leaving without a word (the
// socket simply dropped). Every sample, the server's goroutines and RSS:
// they must stay flat.

type soakSample struct {
	Second     float64 `json:"second"`
	Goroutines float64 `json:"goroutines"`
	RSSMB      float64 `json:"rss_mb"`
	Open       float64 `json:"open_sockets"`
	Answered   int64   `json:"turns_answered"`
}

type soakResult struct {
	Clients     int              `json:"clients"`
	Seconds     float64          `json:"seconds"`
	Sessions    int64            `json:"sessions_started"`
	Resumes     int64            `json:"resumes"`
	Drops       int64            `json:"abrupt_drops"`
	Sent        int64            `json:"turns_sent"`
	Answered    int64            `json:"turns_answered"`
	Errors      map[string]int64 `json:"errors_by_code"`
	Lost        int64            `json:"turns_lost"`
	Samples     []soakSample     `json:"samples"`
	AfterIdleGR float64          `json:"goroutines_after_all_left"`
}

func runSoak(ctx context.Context, bin string, clients int, dur, every time.Duration) (*soakResult, error) {
	redisURL, _, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stopRedis()
	addr, cmd, err := startParley(ctx, bin, []string{"REDIS_URL=" + redisURL, "PARLEY_ASR=off", "PARLEY_RATE_SESSION=0"})
	if err != nil {
		return nil, err
	}
	defer stopParley(cmd)
	url, metrics, pid := "ws://"+addr+"/ws", "http://"+addr+"/metrics", cmd.Process.Pid

	res := &soakResult{Clients: clients, Errors: map[string]int64{}}
	var sessions, resumes, drops, sent, answered, lost atomic.Int64
	var mu sync.Mutex
	type saved struct{ id, token, last string }
	var pool []saved // sessions left behind, for others to resume
	t0 := time.Now()
	stop := t0.Add(dur)

	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() { // one client, visit after visit; ends at stop
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
			for time.Now().Before(stop) && ctx.Err() == nil {
				ws, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				hello := map[string]any{"type": "hello"}
				mu.Lock()
				if len(pool) > 0 && rng.IntN(3) == 0 { // a third resume someone's session
					k := rng.IntN(len(pool))
					s := pool[k]
					pool = append(pool[:k], pool[k+1:]...)
					hello = map[string]any{"type": "hello", "session": s.id, "token": s.token, "last_event": s.last}
					resumes.Add(1)
				} else {
					sessions.Add(1)
				}
				mu.Unlock()
				var s struct{ Type, Session, Token, Code string }
				if ws.WriteJSON(hello) != nil || ws.ReadJSON(&s) != nil || s.Type != "session" {
					ws.Close()
					continue
				}
				last := ""
				turns := 1 + rng.IntN(5)
				for k := 0; k < turns && time.Now().Before(stop); k++ {
					text := "soak " + strconv.Itoa(i) + " " + strconv.Itoa(k)
					if ws.WriteJSON(map[string]any{"type": "text", "text": text}) != nil {
						break
					}
					sent.Add(1)
					ok := false
					_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
					for !ok {
						var ev struct{ Type, ID, Code string }
						if ws.ReadJSON(&ev) != nil {
							lost.Add(1)
							break
						}
						if ev.ID != "" {
							last = ev.ID
						}
						switch ev.Type {
						case "reply.done":
							answered.Add(1)
							ok = true
						case "error":
							mu.Lock()
							res.Errors[ev.Code]++
							mu.Unlock()
							ok = true
						}
					}
					if !ok {
						break
					}
					time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
				}
				mu.Lock()
				if len(pool) < 10000 {
					pool = append(pool, saved{s.Session, s.Token, last})
				}
				mu.Unlock()
				if rng.IntN(4) == 0 { // a quarter just drop the socket
					drops.Add(1)
				} else {
					_ = ws.WriteJSON(map[string]any{"type": "bye"})
				}
				ws.Close()
				time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
			}
		}()
	}

	sample := func() soakSample {
		m := metricValues(metrics, "go_goroutines", "parley_ws_connections")
		return soakSample{Second: round(time.Since(t0).Seconds()), Goroutines: m["go_goroutines"],
			RSSMB: round(memKB(pid, "VmRSS") / 1024), Open: m["parley_ws_connections"], Answered: answered.Load()}
	}
	tick := time.NewTicker(every)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }() // ends when every client has
	for loop := true; loop; {
		select {
		case <-tick.C:
			s := sample()
			res.Samples = append(res.Samples, s)
			fmt.Printf("%6.0f s  goroutines %5.0f  RSS %6.1f MB  open sockets %5.0f  turns answered %d\n", s.Second, s.Goroutines, s.RSSMB, s.Open, s.Answered)
		case <-done:
			loop = false
		}
	}
	tick.Stop()
	// Every client has gone: the server's goroutines come back to rest.
	time.Sleep(3 * time.Second)
	res.AfterIdleGR = metricValues(metrics, "go_goroutines")["go_goroutines"]
	res.Seconds = round(time.Since(t0).Seconds())
	res.Sessions, res.Resumes, res.Drops = sessions.Load(), resumes.Load(), drops.Load()
	res.Sent, res.Answered, res.Lost = sent.Load(), answered.Load(), lost.Load()
	return res, nil
}

// metricValues reads unlabelled gauges from a /metrics page.
func metricValues(url string, names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, n := range names {
		out[n] = metricSum(url, n)
	}
	return out
}

func printSoak(r *soakResult) {
	b, _ := json.Marshal(r.Errors)
	fmt.Printf("\nsoak: %d clients, %.0f s: %d sessions started, %d resumed, %d sockets dropped without bye; turns sent %d, answered %d, lost %d; errors %s; goroutines once all had left: %.0f\n",
		r.Clients, r.Seconds, r.Sessions, r.Resumes, r.Drops, r.Sent, r.Answered, r.Lost, b, r.AfterIdleGR)
}
