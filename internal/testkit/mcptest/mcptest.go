package mcptest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/parleyhq/parley/internal/testkit/npm"
	"github.com/parleyhq/parley/pipeline/tools/mcp"
)

// Tools is how many tools the pinned server-everything offers.
const Tools = 13

// Everything runs server-everything from the npm project at project
// (a path from the test's directory) over stdio, as the MCP server named
// "everything", until the test ends, and returns once it offers its tools.
func Everything(t *testing.T, project string, log *slog.Logger) *mcp.Manager {
	t.Helper()
	bin := npm.Bin(t, project, "mcp-server-everything")
	m, err := mcp.New(mcp.Config{Servers: []mcp.Server{{Name: "everything", Command: bin, Args: []string{"stdio"}}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }() // ends at the test's cleanup
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(60 * time.Second); len(m.Tools()) < Tools; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server-everything offered %d tools", len(m.Tools()))
		}
	}
	return m
}
