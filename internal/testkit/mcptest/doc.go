// Package mcptest starts the npm server-everything (pinned by its
// project's lockfile) under an MCP Manager for the front ends' tool tests.
// Its functions are for a test's goroutine; the Manager it returns is
// goroutine-safe and runs until the test ends.
package mcptest
