package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// sweepPoint is one offered rate of the batching sweep.
type sweepPoint struct {
	Batch   int     `json:"batch"`
	Offered float64 `json:"offered_turns_per_second"`
	*result
}

// runBatchSweep measures micro-batching honestly: the fake upstream's
// /v1/completions costs BatchBase + BatchPer per prompt with at most
// BatchConc calls at once, and the server, with as many slots as the
// upstream runs calls, is offered rising open-loop load with batching off
// (-llm-batch 1) and on. Each batch size gets a fresh server and Redis.
func runBatchSweep(ctx context.Context, bin string, up upstreamConfig, batches []int, rates []float64, step, grace time.Duration, clients int) ([]sweepPoint, error) {
	var out []sweepPoint
	for _, b := range batches {
		err := func() error {
			redisURL, redisPid, stopRedis, err := startRedis(ctx)
			if err != nil {
				return err
			}
			defer stopRedis()
			uctx, cancel := context.WithCancel(ctx)
			defer cancel()
			addr, err := newUpstream(up).serve(uctx, "127.0.0.1:0")
			if err != nil {
				return err
			}
			paddr, cmd, err := startParley(ctx, bin, []string{"REDIS_URL=" + redisURL, "PARLEY_RATE_SESSION=0", "PARLEY_ASR=off",
				"LLM_BASE_URL=http://" + addr + "/v1", "LLM_MODEL=fake", "LLM_API=completions",
				fmt.Sprintf("PARLEY_LLM_SLOTS=%d", up.BatchConc), fmt.Sprintf("PARLEY_LLM_BATCH=%d", b),
				"PARLEY_LLM_QUEUE=64", "PARLEY_LLM_QUEUE_WAIT=2s"})
			if err != nil {
				return err
			}
			defer stopParley(cmd)
			for _, rate := range rates {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				n := clients
				if float64(n) > rate {
					n = int(rate) // at most one turn per second per client
				}
				if n < 1 {
					n = 1
				}
				l := textLoad{URL: "ws://" + paddr + "/ws", Clients: n, Interval: time.Duration(float64(n) / rate * float64(time.Second)),
					Duration: step, Grace: grace, Ramp: time.Second}
				r := runText(ctx, fmt.Sprintf("batch %d, %.0f turns/s offered", b, rate), l, procs{server: cmd.Process.Pid, redis: redisPid}, 0)
				out = append(out, sweepPoint{Batch: b, Offered: rate, result: r})
				fmt.Printf("batch %d  offered %6.1f/s  answered %6.1f/s  busy %5d  done p50 %7.1f ms  p99 %7.1f ms\n",
					b, rate, r.Throughput, r.Refused["busy"], r.ReplyDone.P50, r.ReplyDone.P99)
			}
			return nil
		}()
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func printSweep(points []sweepPoint) {
	fmt.Printf("\nbatching sweep (send → reply.done; the upstream's cost model is the floor)\n")
	fmt.Printf("  %5s %9s %9s %7s %8s %8s %8s\n", "batch", "offered/s", "answered/s", "busy", "p50 ms", "p99 ms", "lost")
	for _, p := range points {
		fmt.Printf("  %5d %9.1f %9.1f %7d %8.1f %8.1f %8d\n", p.Batch, p.Offered, p.Throughput, p.Refused["busy"], p.ReplyDone.P50, p.ReplyDone.P99, p.Lost)
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}
