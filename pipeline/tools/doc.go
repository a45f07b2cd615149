// Package tools holds the tools that the server runs itself, whichever
// front end a session came through: a Toolbox offers tools to the model
// and runs them. Its sub-package mcp fills a Toolbox from MCP servers
// (stdio and Streamable HTTP).
//
// A session may be offered only some of the server's tools: its selection
// (select.go) names tools as the model sees them, or a server's tools
// with "SERVER.*"; Offered and Allowed apply it, Check finds the names
// that select nothing.
//
// Every Toolbox is safe for concurrent use.
package tools
