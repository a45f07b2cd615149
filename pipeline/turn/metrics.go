package turn

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are package-level so that several Engines in one process (tests,
// benchmarks) share them; labels are small fixed sets.
var (
	turnsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "turns", Name: "total",
		Help: "User turns by outcome: replied, interrupted, rate_limited, busy, upstream, internal, duplicate.",
	}, []string{"outcome"})
	// The refusal counted at the door, looked up once.
	busyTotal = turnsTotal.WithLabelValues(string(CodeBusy))
	batchSize = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "llm", Name: "batch_size",
		Help:    "Turns per upstream LLM call.",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 32},
	})
	inflight = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "llm", Name: "inflight_calls",
		Help: "Upstream LLM calls in flight on this replica (slots in use).",
	})
	queued = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "llm", Name: "queued_turns",
		Help: "Turns waiting for a slot on this replica.",
	})
	queueWait = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "llm", Name: "queue_wait_seconds",
		Help:    "Time from a turn's acceptance to its upstream call.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	firstToken = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "llm", Name: "first_token_seconds",
		Help:    "Time from a turn's acceptance to its first reply text stored.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	adopted = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "llm", Name: "adopted_turns_total",
		Help: "Turns taken over from a replica that stopped heartbeating.",
	})
	storeRetries = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "turns", Name: "store_retries_total",
		Help: "Stores of a turn's start or reply sent again because Redis was unavailable.",
	})
)

var toolCalls = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "llm", Name: "tool_calls_total",
	Help: "Tool calls the model made (the client's and the server's).",
})
