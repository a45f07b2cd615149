// Package tools holds the tools that the server runs itself, whichever
// front end a session came through: a Toolbox offers tools to the model
// and runs them. Its sub-package mcp fills a Toolbox from MCP servers
// (stdio and Streamable HTTP).
//
// Every Toolbox is safe for concurrent use.
package tools
