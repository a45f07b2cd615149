package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The echo gate's A/B (voice -ab echo-gate): the voice scenario's calls
// against two servers started side by side, one with the echo gate on
// (the default) and one with -echo-gate=false, over the same Redis and
// fake providers. A run is rounds; in each, every arm runs one step in
// turn (the other server idle meanwhile), the order rotating from round
// to round, so that the machine's drift (other jobs on its two cores)
// falls on every arm alike. Each step's figure is that server's CPU
// (from /proc) over the step, per call.
//
// Every arm's callers encode their microphone live (echoPath), so the
// load generator costs the same in each; in the echo arms they mix the
// bot's audio into it at -echo-db, -echo-delay late. The gate does its
// full work only then: with a silent caller it runs while the bot plays
// but finds nothing that follows the bot (no correlation, no gain to
// learn).

type echoArm struct {
	Name string `json:"arm"`
	Gate bool   `json:"echo_gate"`
	Echo bool   `json:"caller_echo"`
}

// echoArms: the first is the voice benchmark without echo handling, the
// one the others are held against.
var echoArms = []echoArm{
	{Name: "gate off", Gate: false},
	{Name: "gate on", Gate: true},
	{Name: "gate on, echo", Gate: true, Echo: true},   // the gate's full work
	{Name: "gate off, echo", Gate: false, Echo: true}, // what the gate is for: the bot hears itself
}

type echoABStep struct {
	echoArm
	Round int `json:"round"`
	voiceStep
	BargeIns       float64    `json:"server_barge_ins"`
	EchoSuppressed float64    `json:"server_echo_suppressed"`
	LoadGen        *procStats `json:"load_generator"`
	LoadAvg        string     `json:"loadavg_after"`
}

type echoArmSummary struct {
	echoArm
	CPUPerCall []float64 `json:"server_cpu_percent_per_call"`
	Mean       float64   `json:"mean"`
	VsFirst    float64   `json:"percent_vs_gate_off"`
	// The server's CPU over the load generator's in the same step: the
	// generator's work is the same in every arm, so the ratio takes out
	// much of the machine's drift (both slow down alike).
	PerLoadGen      []float64 `json:"server_cpu_per_load_generator_cpu"`
	PerLoadGenMean  float64   `json:"server_per_load_generator_mean"`
	PerLoadGenVsOff float64   `json:"server_per_load_generator_percent_vs_gate_off"`
}

type echoABRun struct {
	Calls     int              `json:"calls"`
	Step      string           `json:"step"`
	Rounds    int              `json:"rounds"`
	EchoDB    float64          `json:"echo_db"`
	EchoDelay string           `json:"echo_delay"`
	Speech    string           `json:"speech"`
	Steps     []echoABStep     `json:"steps"`
	Summary   []echoArmSummary `json:"summary"`
}

// echoAB configures runEchoAB.
type echoAB struct {
	Calls, Rounds int
	Step, VADStop time.Duration
	EchoDB        float64
	EchoDelay     time.Duration
}

func runEchoAB(ctx context.Context, bin string, ab echoAB) (*echoABRun, error) {
	const phrase = "what time is it"
	speech, silence, err := speechPCM(phrase)
	if err != nil {
		return nil, err
	}
	env, stopEnv, err := voiceEnv(ctx, "fake", phrase, ab.VADStop, ab.Calls)
	if err != nil {
		return nil, err
	}
	defer stopEnv()
	servers := map[bool]*voiceServer{}
	for _, gate := range []bool{true, false} {
		s, err := startVoiceServer(ctx, bin, append(env, fmt.Sprintf("PARLEY_ECHO_GATE=%t", gate)))
		if err != nil {
			return nil, err
		}
		defer stopParley(s.cmd)
		servers[gate] = s
	}
	run := &echoABRun{Calls: ab.Calls, Step: ab.Step.String(), Rounds: ab.Rounds, EchoDB: ab.EchoDB,
		EchoDelay: ab.EchoDelay.String(), Speech: fmt.Sprintf("%q, %d frames", phrase, len(speech))}
	for r := 0; r < ab.Rounds && ctx.Err() == nil; r++ {
		for i := range echoArms {
			arm := echoArms[(r+i)%len(echoArms)]
			st := echoABStepRun(ctx, servers[arm.Gate], arm, ab, speech, silence)
			st.Round = r + 1
			run.Steps = append(run.Steps, st)
			fmt.Printf("round %d, %-14s %d calls: %d turns (%d unanswered, %d cut), barge-ins %.0f, echo suppressed %.0f; pacer underruns %.0f; server CPU %.0f%% (%.3f%% per call); load generator %.0f%%; load %s\n",
				st.Round, arm.Name+":", st.Calls, st.Turns, st.NoReply, st.Interrupted, st.BargeIns, st.EchoSuppressed,
				st.PacerUnder, st.Server.CPUPercent, st.Server.CPUPercent/float64(st.Calls), st.LoadGen.CPUPercent, st.LoadAvg)
		}
	}
	run.Summary = summarizeArms(run.Steps)
	return run, nil
}

type voiceServer struct {
	cmd               *exec.Cmd
	wsURL, metricsURL string
}

func startVoiceServer(ctx context.Context, bin string, env []string) (*voiceServer, error) {
	addr, cmd, err := startParley(ctx, bin, env)
	if err != nil {
		return nil, err
	}
	return &voiceServer{cmd: cmd, wsURL: "ws://" + addr + "/ws", metricsURL: "http://" + addr + "/metrics"}, nil
}

// echoABStepRun runs one arm's step: its calls against its server.
func echoABStepRun(ctx context.Context, s *voiceServer, arm echoArm, ab echoAB, speech [][]byte, silence []byte) echoABStep {
	gain := 0.0
	if arm.Echo {
		gain = dbGain(ab.EchoDB)
	}
	dial := func(ctx context.Context, url string) (voiceClient, error) {
		c, err := dialCall(ctx, url)
		if err != nil {
			return nil, err
		}
		e, err := newEchoPath(gain, ab.EchoDelay)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.(*callClient).echo = e
		return c, nil
	}
	barge0 := metricSum(s.metricsURL, "parley_call_barge_ins_total")
	supp0 := metricSum(s.metricsURL, "parley_call_echo_suppressed_total")
	self := watch(os.Getpid())
	st := voiceStepRun(ctx, dial, s.wsURL, s.metricsURL, s.cmd.Process.Pid, ab.Calls, ab.Step, speech, silence)
	return echoABStep{echoArm: arm, voiceStep: st, LoadGen: self(), LoadAvg: loadAvg(),
		BargeIns:       metricSum(s.metricsURL, "parley_call_barge_ins_total") - barge0,
		EchoSuppressed: metricSum(s.metricsURL, "parley_call_echo_suppressed_total") - supp0}
}

// summarizeArms gathers each arm's CPU per call and holds its mean
// against the first arm's (gate off, no echo).
func summarizeArms(steps []echoABStep) []echoArmSummary {
	sums := make([]echoArmSummary, len(echoArms))
	for i, a := range echoArms {
		sums[i].echoArm = a
		for _, st := range steps {
			if st.echoArm == a && st.Server != nil && st.Calls > 0 {
				sums[i].CPUPerCall = append(sums[i].CPUPerCall, round3(st.Server.CPUPercent/float64(st.Calls)))
				if st.LoadGen != nil && st.LoadGen.CPUPercent > 0 {
					sums[i].PerLoadGen = append(sums[i].PerLoadGen, round3(st.Server.CPUPercent/st.LoadGen.CPUPercent))
				}
			}
		}
		sums[i].Mean = round3(mean(sums[i].CPUPerCall))
		sums[i].PerLoadGenMean = round3(mean(sums[i].PerLoadGen))
	}
	for i := range sums {
		sums[i].VsFirst = percentOver(sums[i].Mean, sums[0].Mean)
		sums[i].PerLoadGenVsOff = percentOver(sums[i].PerLoadGenMean, sums[0].PerLoadGenMean)
	}
	return sums
}

// percentOver is how many percent x is over base (0 without a base).
func percentOver(x, base float64) float64 {
	if base <= 0 {
		return 0
	}
	return round(100 * (x/base - 1))
}

// round3 keeps three decimals: a step's CPU per call is a few tenths of
// a percent, and round's two would be a 2 % step.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func printArms(sums []echoArmSummary) {
	fmt.Println("server CPU per call (% of a core), by arm:")
	for _, s := range sums {
		fmt.Printf("  %-15s mean %.3f%% (%+.1f%% vs %s)  rounds %v\n", s.Name, s.Mean, s.VsFirst, sums[0].Name, s.CPUPerCall)
	}
	fmt.Println("server CPU ÷ the load generator's (the machine's drift taken out), by arm:")
	for _, s := range sums {
		fmt.Printf("  %-15s mean %.3f (%+.1f%% vs %s)  rounds %v\n", s.Name, s.PerLoadGenMean, s.PerLoadGenVsOff, sums[0].Name, s.PerLoadGen)
	}
}

// loadAvg is the machine's load average (1, 5, 15 minutes).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
