package mcp

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Results of a call, the label of callsTotal.
const (
	resultOK        = "ok"
	resultError     = "error"     // the tool failed, or its server went away
	resultTimeout   = "timeout"   // past the call's deadline
	resultInvalid   = "invalid"   // arguments refused before the call
	resultUnknown   = "unknown"   // no such tool offered
	resultCancelled = "cancelled" // the caller gave up first
)

// Metrics are package-level, shared by every Manager in the process
// (tests run several); their labels are fixed sets, never a server's or a
// tool's name.
var (
	callsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mcp", Name: "tool_calls_total",
		Help: "Calls of MCP servers' tools by result: ok, error, timeout, invalid, unknown, cancelled.",
	}, []string{"result"})
	callSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "parley", Subsystem: "mcp", Name: "tool_call_seconds",
		Help:    "Time of the calls that reached an MCP server.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	serversUp = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "mcp", Name: "servers_up",
		Help: "MCP servers connected, their tools offered.",
	})
	serversConfigured = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "mcp", Name: "servers_configured",
		Help: "MCP servers in the configuration, up or not.",
	})
	restartsTotal = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "parley", Subsystem: "mcp", Name: "server_restarts_total",
		Help: "Times an MCP server was started or connected again after it died, failed to start or stopped answering.",
	})
	toolsOffered = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "parley", Subsystem: "mcp", Name: "tools_offered",
		Help: "Tools offered from MCP servers now.",
	})
)
