package main

import (
	"context"
	"fmt"
	"math"
	"time"
)

// overloadRun is the overload scenario's result: one phase a -factors
// value, in order, on the same server.
type overloadRun struct {
	Clients int            `json:"base_clients"`
	Phases  []overloadStep `json:"phases"`
}

type overloadStep struct {
	Factor float64 `json:"factor"`
	// Goodput: this phase's answered turns per second over the first
	// phase's (the base load, which the server should answer in full).
	Goodput float64 `json:"goodput_of_base"`
	Offered float64 `json:"offered_per_second"` // turns sent over the phase's sending time
	// Recovered: the first second, after the phase's clients have all
	// connected (-ramp), from which every second answers at least 95 % of
	// the first phase's rate (-1: never in this phase).
	Recovered int `json:"recovered_after_s"`
	*result
}

// runOverload runs one stack and offers it, phase after phase, factor ×
// base.Clients clients each sending a turn every base.Interval for
// base.Duration. What the issue asks of it: the answered turns per second
// hold at 2× and 4× the base load, and the last phase, back at the base,
// answers as the first did (the server recovered).
func runOverload(ctx context.Context, bin, llm string, slots int, rateSession string, up upstreamConfig, base textLoad, factors []float64) (*overloadRun, error) {
	st, err := startTextStack(ctx, bin, llm, slots, rateSession, up)
	if err != nil {
		return nil, err
	}
	defer st.stop()
	run := &overloadRun{Clients: base.Clients}
	for i, f := range factors {
		l := base
		l.URL = st.url
		l.Clients = int(math.Round(f * float64(base.Clients)))
		l.Series = true
		r := runText(ctx, fmt.Sprintf("overload phase %d (%g×)", i+1, f), l, st.procs, st.upstreamTime)
		step := overloadStep{Factor: f, result: r, Offered: round(float64(r.Sent) / l.Duration.Seconds())}
		if len(run.Phases) > 0 && run.Phases[0].Throughput > 0 {
			step.Goodput = round(r.Throughput / run.Phases[0].Throughput)
		} else {
			step.Goodput = 1
		}
		step.Recovered = -1
		if len(run.Phases) > 0 {
			// Counted from the end of the phase's ramp: before it, not all
			// its clients send.
			skip := min(int(math.Ceil(l.Ramp.Seconds())), len(r.AnsweredEach))
			step.Recovered = recoveredAfter(r.AnsweredEach[skip:], int(l.Duration/time.Second)-skip, 0.95*run.Phases[0].Throughput)
		}
		run.Phases = append(run.Phases, step)
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second) // the phase's sockets close
	}
	return run, nil
}

// recoveredAfter is the first second from which each of the first n
// seconds answered at least floor turns; -1 if none.
func recoveredAfter(each []int, n int, floor float64) int {
	from := -1
	for k := range n {
		ok := k < len(each) && float64(each[k]) >= floor
		switch {
		case ok && from < 0:
			from = k
		case !ok:
			from = -1
		}
	}
	return from
}

func printOverload(run *overloadRun) {
	fmt.Printf("\noverload: base %d clients\n", run.Clients)
	fmt.Printf("  %-7s %8s %9s %8s %9s %9s %9s %11s %11s %11s %9s\n", "phase", "offered", "answered", "goodput", "refused", "done p50", "done p99", "server/turn", "redis/turn", "load/turn", "at 95 %")
	for i, p := range run.Phases {
		var refused int64
		for _, n := range p.Refused {
			refused += n
		}
		at := "never"
		switch {
		case i == 0:
			at = "-"
		case p.Recovered >= 0:
			at = fmt.Sprintf("%d s", p.Recovered)
		}
		fmt.Printf("  %-7s %8.0f %9.0f %8.2f %9d %9.1f %9.1f %9.0fµs %9.0fµs %9.0fµs %9s\n",
			fmt.Sprintf("%g×", p.Factor), p.Offered, p.Throughput, p.Goodput, refused,
			p.ReplyDone.Values["p50"], p.ReplyDone.Values["p99"],
			p.Extra["server_cpu_us_per_turn"], p.Extra["redis_cpu_us_per_turn"], p.Extra["load_generator_cpu_us_per_turn"], at)
	}
}
