// Command parley-load measures a Parley server as an outside client would:
// it speaks only the wire protocol (it imports nothing of the server), and
// reports latency percentiles, throughput, errors by code, disconnects, and
// the server's CPU and peak memory read from /proc.
//
//	parley-load seed     [flags]  redis-server + fake upstream + bin/parley, 1,000 text clients
//	parley-load idle     [flags]  redis-server + bin/parley, N sessions that only stay connected
//	parley-load overload [flags]  one server, the offered load in phases (-factors × -clients): goodput under overload, and after
//	parley-load batch    [flags]  the batching sweep: batching off and on, offered load rising
//	parley-load replicas [flags]  two replicas on one Redis: delivery of an event across them
//	parley-load voice    [flags]  N calls over the WebSocket audio channel (-proto realtime: over /v1/realtime;
//	                              -ab echo-gate: the echo gate on and off, alternating, callers with and without an echo)
//	parley-load phone    [flags]  N phone calls as Twilio makes them (webhook, Media Stream, mu-law)
//	parley-load soak     [flags]  clients coming and going for a long time; goroutines and RSS sampled
//	parley-load text     -url ws://127.0.0.1:8080/ws -pid N [flags]   against a running server
//	parley-load upstream -addr 127.0.0.1:9000 [flags]                 the fake model server alone
//
// Everything is on loopback, bounded in clients and time, and stops by
// itself. Results print as a table and, with -json, as JSON.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: parley-load seed|idle|text|upstream [flags]")
		os.Exit(2)
	}
	raiseFileLimit()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mode, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	clients := fs.Int("clients", 1000, "concurrent clients")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between one client's turns")
	duration := fs.Duration("duration", 60*time.Second, "how long clients send turns (or stay idle)")
	grace := fs.Duration("grace", 10*time.Second, "time after -duration for replies under way")
	ramp := fs.Duration("ramp", 2*time.Second, "clients connect spread over this")
	url := fs.String("url", "", "the server's /ws URL (text, idle against a running server)")
	redisAddrs := fs.String("redis", "", "text: the Redis (or cluster nodes, comma-separated host:port) to read command and byte counters from")
	pid := fs.Int("pid", 0, "the server's pid, for CPU and memory")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	parley := fs.String("parley", "./bin/parley", "the server binary (seed, idle)")
	upAddr := fs.String("addr", "127.0.0.1:0", "listen address (upstream)")
	llm := fs.String("llm", "fake", "seed: the model: fake (the fake upstream) or local (the offline responder)")
	slots := fs.Int("slots", 64, "seed: the server's -llm-slots")
	rateSession := fs.String("rate-session", "0", "seed: the server's -rate-session (0: no per-session limit, so that every turn reaches the model path)")
	batches := fs.String("batches", "1,4", "batch: the server's -llm-batch values to compare")
	factors := fs.String("factors", "1,2,4,1", "overload: the offered load of each phase, as multiples of -clients (each phase lasts -step)")
	rates := fs.String("rates", "5,10,20,40,60,80,100,120", "batch: offered turns per second, in order")
	step := fs.Duration("step", 10*time.Second, "batch, voice, phone: how long each step runs")
	every := fs.Duration("every", 10*time.Second, "soak: how often the server is sampled")
	calls := fs.String("calls", "25,50,100,150,200", "voice, phone: concurrent calls, a step each")
	stack := fs.String("stack", "fake", "voice: fake (zero-cost ASR and TTS fakes) or offline (pocketsphinx and flite)")
	vadStop := fs.Duration("vad-stop", 600*time.Millisecond, "voice, phone: the server's -vad-stop")
	ab := fs.String("ab", "", "voice: an A/B in one run, the arms alternating in -rounds: echo-gate (the server's echo gate on and off, the caller with and without an echo; one -calls value)")
	rounds := fs.Int("rounds", 3, "voice -ab: rounds, each a -step of every arm")
	echoDB := fs.Float64("echo-db", -6, "voice -ab echo-gate: the level of the bot's audio in the echo arms' microphone, dB")
	echoDelay := fs.Duration("echo-delay", 60*time.Millisecond, "voice -ab echo-gate: how late the bot's audio comes back into the microphone")
	fs.Var(&serverEnv, "server-env", "KEY=VALUE added to the environment of every server the run starts, after the scenario's own settings (so it wins over them), e.g. PARLEY_GC_PERCENT=400 or GOMEMLIMIT=256MiB; repeat for more")
	proto := fs.String("proto", "parley", "voice: the calls' protocol: parley (Opus over /ws) or realtime (the OpenAI Realtime protocol, PCM16 over /v1/realtime)")
	var up upstreamConfig
	fs.DurationVar(&up.TTFT, "ttft", 100*time.Millisecond, "fake upstream: time to first token")
	fs.Float64Var(&up.TPS, "tps", 200, "fake upstream: tokens per second")
	fs.IntVar(&up.Words, "words", 10, "fake upstream: tokens per reply")
	fs.Float64Var(&up.ErrorRate, "error-rate", 0, "fake upstream: fraction of calls that fail")
	fs.DurationVar(&up.BatchBase, "batch-base", 150*time.Millisecond, "fake upstream: cost of a /v1/completions call")
	fs.DurationVar(&up.BatchPer, "batch-per", 15*time.Millisecond, "fake upstream: added cost per prompt")
	fs.IntVar(&up.BatchConc, "batch-conc", 4, "fake upstream: completions calls at once")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file (its cost is the benchmark's cost on a shared machine)")
	ownProcs := fs.Int("procs", 0, "the load generator's own GOMAXPROCS (0: Go's default); the servers it starts keep theirs")
	_ = fs.Parse(args)
	if *ownProcs > 0 {
		runtime.GOMAXPROCS(*ownProcs)
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fail(err)
		}
		defer stopProfile()
	}

	var res *result
	var err error
	switch mode {
	case "upstream":
		addr, err := newUpstream(up).serve(ctx, *upAddr)
		if err != nil {
			fail(err)
		}
		fmt.Printf("fake upstream on http://%s/v1\n", addr)
		<-ctx.Done()
		return
	case "text":
		res = runText(ctx, "text", textLoad{URL: *url, Clients: *clients, Interval: *interval, Duration: *duration, Grace: *grace, Ramp: *ramp}, procs{server: *pid, redisAddr: *redisAddrs}, 0)
	case "idle":
		res, err = runIdle(ctx, *parley, *clients, *duration)
	case "batch":
		bs, err1 := parseInts(*batches)
		rs, err2 := parseFloats(*rates)
		if err1 != nil || err2 != nil {
			fail(fmt.Errorf("-batches/-rates: %v %v", err1, err2))
		}
		points, err := runBatchSweep(ctx, *parley, up, bs, rs, *step, *grace, *clients)
		if err != nil {
			fail(err)
		}
		printSweep(points)
		writeJSON(*jsonOut, points)
		return
	case "voice":
		ns, err := parseInts(*calls)
		if err != nil {
			fail(err)
		}
		if *ab != "" {
			if *ab != "echo-gate" || len(ns) != 1 || *stack != "fake" || *proto != "parley" {
				fail(fmt.Errorf("-ab %q: echo-gate, with one -calls value, -stack fake, -proto parley", *ab))
			}
			run, err := runEchoAB(ctx, *parley, echoAB{Calls: ns[0], Rounds: *rounds, Step: *step, VADStop: *vadStop, EchoDB: *echoDB, EchoDelay: *echoDelay})
			if err != nil {
				fail(err)
			}
			printArms(run.Summary)
			writeJSON(*jsonOut, run)
			return
		}
		run, err := runVoice(ctx, *parley, *stack, *proto, ns, *step, *vadStop)
		if err != nil {
			fail(err)
		}
		writeJSON(*jsonOut, run)
		return
	case "phone":
		ns, err := parseInts(*calls)
		if err != nil {
			fail(err)
		}
		run, err := runPhone(ctx, *parley, ns, *step, *vadStop)
		if err != nil {
			fail(err)
		}
		writeJSON(*jsonOut, run)
		return
	case "soak":
		r, err := runSoak(ctx, *parley, *clients, *duration, *every)
		if err != nil {
			fail(err)
		}
		printSoak(r)
		writeJSON(*jsonOut, r)
		return
	case "replicas":
		res, err = runReplicas(ctx, *parley, textLoad{Clients: *clients, Interval: *interval, Duration: *duration, Grace: *grace, Ramp: *ramp})
	case "overload":
		fs, err := parseFloats(*factors)
		if err != nil {
			fail(fmt.Errorf("-factors: %v", err))
		}
		run, err := runOverload(ctx, *parley, *llm, *slots, *rateSession, up, textLoad{Clients: *clients, Interval: *interval, Duration: *step, Grace: *grace, Ramp: *ramp}, fs)
		if err != nil {
			fail(err)
		}
		printOverload(run)
		writeJSON(*jsonOut, run)
		return
	case "seed":
		res, err = runSeed(ctx, *parley, *llm, *slots, *rateSession, up, textLoad{Clients: *clients, Interval: *interval, Duration: *duration, Grace: *grace, Ramp: *ramp})
	default:
		fail(fmt.Errorf("unknown mode %q", mode))
	}
	if err != nil {
		fail(err)
	}
	printResult(res)
	writeJSON(*jsonOut, res)
}

func writeJSON(path string, v any) {
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil { // a NaN: the server's /metrics did not answer (it died?)
		fail(fmt.Errorf("-json: %w", err))
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "parley-load:", err)
	os.Exit(1)
}

// startCPUProfile profiles this process into path until the returned stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// procs are the processes whose CPU and memory a run reports; redisAddr,
// when set, is asked for its command and byte counters.
type procs struct {
	server, redis int
	redisAddr     string
}

func runText(ctx context.Context, name string, l textLoad, p procs, upstreamTime time.Duration) *result {
	measure, measureRedis, measureSelf := watch(p.server), watch(p.redis), watch(os.Getpid())
	info0 := redisCounters(p.redisAddr)
	t0 := time.Now()
	col := l.run(ctx)
	server := measure()
	info1 := redisCounters(p.redisAddr)
	secs := time.Since(t0).Seconds()
	r := &result{
		Scenario: name, Clients: l.Clients, Seconds: round(secs),
		Sent: col.sent.Load(), Done: col.fin.Load(), Lost: col.lost.Load(),
		Refused: col.refused, Disconnects: col.disconnects.Load(), ConnectFail: col.connectFail.Load(),
		// Replies answered while turns were being sent: the steady rate,
		// not inflated by a backlog answered in the grace period.
		Throughput: round(float64(col.finInWindow.Load()) / l.Duration.Seconds()),
		FirstDelta: summarize(col.first, 0), ReplyDone: summarize(col.done, 0),
		Server: server, Redis: measureRedis(), Load: measureSelf(),
	}
	if l.Series {
		r.AnsweredEach, r.RefusedEach = perSecond(t0, col.doneAt), perSecond(t0, col.refusedAt)
	}
	if n := float64(col.fin.Load()); n > 0 {
		// CPU per answered turn: what bounds throughput on a shared machine.
		r.Extra = map[string]float64{}
		for _, ps := range []struct {
			name string
			s    *procStats
		}{{"server", r.Server}, {"redis", r.Redis}, {"load_generator", r.Load}} {
			if ps.s != nil {
				r.Extra[ps.name+"_cpu_us_per_turn"] = round(ps.s.CPUPercent / 100 * secs * 1e6 / n)
			}
		}
		// What a turn asks of a Redis shard, for the capacity model
		// (docs/scaling.md): commands (those inside scripts included),
		// script calls, bytes in and out.
		for k, v := range info1 {
			if d := v - info0[k]; info0 != nil && d > 0 {
				r.Extra["redis_"+k+"_per_turn"] = round(d / n)
			}
		}
		if info0 != nil && l.Clients > 0 {
			// What the run's sessions keep in Redis, each with its turns.
			r.Extra["redis_memory_bytes_per_session"] = round((info1["memory_bytes"] - info0["memory_bytes"]) / float64(l.Clients))
		}
	}
	if upstreamTime > 0 {
		// What the server adds: the fake upstream's own time taken out.
		if r.Extra == nil {
			r.Extra = map[string]float64{}
		}
		r.Extra["upstream_ms"] = float64(upstreamTime.Milliseconds())
		added := summarize(col.done, upstreamTime)
		r.Extra["server_added_done_p50_ms"], r.Extra["server_added_done_p99_ms"] = added.Values["p50"], added.Values["p99"]
	}
	return r
}

func printResult(r *result) {
	fmt.Printf("\n%s: %d clients, %.0f s\n", r.Scenario, r.Clients, r.Seconds)
	fmt.Printf("  turns sent %d, answered %d, lost %d; %.0f turns/s; disconnects %d; connect failures %d; errors %v\n",
		r.Sent, r.Done, r.Lost, r.Throughput, r.Disconnects, r.ConnectFail, r.Refused)
	fmt.Printf("  %-28s %8s %8s %8s %8s\n", "latency (ms)", "p50", "p95", "p99", "max")
	for _, s := range []struct {
		n string
		v stats
	}{{"send → first delta", r.FirstDelta}, {"send → reply.done", r.ReplyDone}} {
		if r.Labels[0] != "" {
			s.n = map[string]string{"send → first delta": r.Labels[0], "send → reply.done": r.Labels[1]}[s.n]
		}
		fmt.Printf("  %-28s %8.1f %8.1f %8.1f %8.1f\n", s.n, s.v.P50, s.v.P95, s.v.P99, s.v.Max)
	}
	if when := secondsWith(r.RefusedEach); when != "" {
		fmt.Printf("  refusals in seconds %s of the run\n", when)
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("  %s: %v\n", k, r.Extra[k])
	}
	for _, ps := range []struct {
		name string
		s    *procStats
	}{{"server", r.Server}, {"redis-server", r.Redis}, {"load generator", r.Load}} {
		if ps.s != nil {
			fmt.Printf("  %s: %.0f%% CPU (of one core), RSS %.0f MB, peak %.0f MB\n", ps.name, ps.s.CPUPercent, ps.s.RSSMB, ps.s.PeakRSSMB)
		}
	}
}

// --- the orchestrated scenarios: every process on loopback, stopped at the end ---

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// redisCounters sums, over the Redis nodes in addrs (comma-separated), the
// counters that say what the server asked of them; nil when it cannot.
func redisCounters(addrs string) map[string]float64 {
	if addrs == "" {
		return nil
	}
	sum := map[string]float64{}
	for _, a := range strings.Split(addrs, ",") {
		one := nodeCounters(a)
		if one == nil {
			return nil
		}
		for k, v := range one {
			sum[k] += v
		}
	}
	return sum
}

func nodeCounters(addr string) map[string]float64 {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "INFO all\r\n")
	rd := bufio.NewReader(c)
	head, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return nil
	}
	size, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, size)
	if _, err := io.ReadFull(rd, body); err != nil {
		return nil
	}
	want := map[string]string{
		"total_commands_processed": "commands",
		"total_net_input_bytes":    "bytes_in",
		"total_net_output_bytes":   "bytes_out",
		"used_memory":              "memory_bytes",
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if name, ok := want[k]; ok {
			out[name], _ = strconv.ParseFloat(v, 64)
		}
		// cmdstat_evalsha:calls=N,usec=...: the round trips that run a script.
		if k == "cmdstat_evalsha" || k == "cmdstat_eval" {
			calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
			f, _ := strconv.ParseFloat(calls, 64)
			out["scripts"] += f
		}
	}
	return out
}

func startRedis(ctx context.Context) (string, int, func(), error) {
	addr := freePort()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.CommandContext(ctx, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("redis-server: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			fmt.Fprint(c, "PING\r\n")
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if line == "+PONG\r\n" {
				return "redis://" + addr, cmd.Process.Pid, stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", 0, nil, fmt.Errorf("redis-server did not come up")
}

func startParley(ctx context.Context, bin string, env []string) (string, *exec.Cmd, error) {
	addr := freePort()
	cmd := exec.CommandContext(ctx, bin)
	// Every client of the load generator comes from 127.0.0.1: the
	// server's per-IP caps are off.
	cmd.Env = append(os.Environ(), append(env, "PARLEY_ADDR="+addr, "PARLEY_LOG_LEVEL=warn",
		"PARLEY_MAX_CONNS_PER_IP=0", "PARLEY_CONNECT_RATE_PER_IP=0")...)
	// -server-env last: exec uses the last value of a repeated key.
	cmd.Env = append(cmd.Env, serverEnv...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("%s: %w (run 'make build')", bin, err)
	}
	for i := 0; i < 200; i++ {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr, cmd, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", nil, fmt.Errorf("parley did not come up")
}

// serverEnv is -server-env: settings for the servers a run starts (an
// A/B of a server setting is runs alternating with and without it).
// Variables such as GOGC set on parley-load itself would change the load
// generator too, whose CPU is part of every figure.
var serverEnv envList

// envList is a repeated KEY=VALUE flag.
type envList []string

func (e *envList) String() string { return strings.Join(*e, " ") }

func (e *envList) Set(s string) error {
	if k, _, ok := strings.Cut(s, "="); !ok || k == "" || strings.ContainsAny(k, " \t") {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	*e = append(*e, s)
	return nil
}

func stopParley(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
	}
}

func runSeed(ctx context.Context, bin, llm string, slots int, rateSession string, up upstreamConfig, l textLoad) (*result, error) {
	st, err := startTextStack(ctx, bin, llm, slots, rateSession, up)
	if err != nil {
		return nil, err
	}
	defer st.stop()
	l.URL = st.url
	l.Series = true // when turns were refused: a stall of the machine or of the server
	return runText(ctx, "seed ("+llm+" model)", l, st.procs, st.upstreamTime), nil
}

// textStack is a redis-server, the fake upstream when asked for, and a
// server on them, as the seed and overload scenarios run them.
type textStack struct {
	url          string
	procs        procs
	upstreamTime time.Duration // the fake upstream's own time per reply
	stop         func()
}

func startTextStack(ctx context.Context, bin, llm string, slots int, rateSession string, up upstreamConfig) (*textStack, error) {
	redisURL, redisPid, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	stops := []func(){stopRedis}
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	env := []string{"REDIS_URL=" + redisURL, "PARLEY_RATE_SESSION=" + rateSession, "PARLEY_ASR=off",
		fmt.Sprintf("PARLEY_LLM_SLOTS=%d", slots), "PARLEY_LLM_QUEUE=256"}
	st := &textStack{}
	if llm == "fake" {
		uctx, cancel := context.WithCancel(ctx)
		stops = append(stops, cancel)
		addr, err := newUpstream(up).serve(uctx, "127.0.0.1:0")
		if err != nil {
			stop()
			return nil, err
		}
		env = append(env, "LLM_BASE_URL=http://"+addr+"/v1", "LLM_MODEL=fake")
		st.upstreamTime = up.TTFT
		if up.TPS > 0 {
			st.upstreamTime += time.Duration(float64(up.Words) / up.TPS * float64(time.Second))
		}
	}
	addr, cmd, err := startParley(ctx, bin, env)
	if err != nil {
		stop()
		return nil, err
	}
	stops = append(stops, func() { stopParley(cmd) })
	st.url = "ws://" + addr + "/ws"
	st.procs = procs{cmd.Process.Pid, redisPid, strings.TrimPrefix(redisURL, "redis://")}
	st.stop = stop
	return st, nil
}

func runIdle(ctx context.Context, bin string, clients int, hold time.Duration) (*result, error) {
	redisURL, _, stopRedis, err := startRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer stopRedis()
	addr, cmd, err := startParley(ctx, bin, []string{"REDIS_URL=" + redisURL, "PARLEY_ASR=off"})
	if err != nil {
		return nil, err
	}
	defer stopParley(cmd)
	pid := cmd.Process.Pid
	base := memKB(pid, "VmRSS")
	var res result
	measure := watch(pid)
	col := idleLoad(ctx, "ws://"+addr+"/ws", clients, hold, func() { res.Server = measure() })
	// Only the sockets still open at the measurement count.
	open := float64(clients - int(col.connectFail.Load()) - int(col.disconnects.Load()))
	res.Scenario, res.Clients, res.Seconds = "idle", clients, hold.Seconds()
	res.ConnectFail = col.connectFail.Load()
	res.Disconnects = col.disconnects.Load()
	res.Refused = map[string]int64{}
	res.FirstDelta, res.ReplyDone = summarize(nil, 0), summarize(nil, 0)
	if open > 0 && res.Server != nil {
		res.Extra = map[string]float64{
			"rss_per_connection_kb": round((res.Server.RSSMB*1024 - base) / open),
			"baseline_rss_mb":       round(base / 1024),
		}
	}
	return &res, nil
}

// secondsWith lists the seconds (from 0) whose count is not zero, runs of
// them as ranges: "3-5, 9".
func secondsWith(counts []int) string {
	var parts []string
	for i := 0; i < len(counts); i++ {
		if counts[i] == 0 {
			continue
		}
		j := i
		for j+1 < len(counts) && counts[j+1] != 0 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", i, j))
		} else {
			parts = append(parts, strconv.Itoa(i))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}
