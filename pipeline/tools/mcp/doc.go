// Package mcp offers the tools of MCP (Model Context Protocol) servers to
// the model, as a tools.Toolbox: the Manager starts the configured
// servers, lists their tools and runs the calls that the model makes.
//
// # Configuration
//
// LoadConfig reads the file of -mcp-config, in the shape that MCP clients
// share:
//
//	{"mcpServers": {
//	  "files": {"command": "npx", "args": ["-y", "some-mcp-server"], "env": {"ROOT": "/srv"}},
//	  "search": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ..."}}}}
//
// An entry with "command" is run over stdio ("args", "env", "cwd"); one
// with "url" is reached over Streamable HTTP ("headers", sent only to the
// URL's host). Both, or neither, is an error naming the server; so is a
// field of the wrong type. "type" may say "stdio" or "http"
// ("streamable-http"); "sse", the legacy transport, is refused.
// "disabled": true leaves the entry out. Other fields are ignored with a
// warning: the same file often serves other clients, which add fields of
// their own.
//
// A stdio server does not inherit Parley's environment, which holds API
// keys: it gets PATH, HOME, USER, LOGNAME, SHELL, TERM, TMPDIR, LANG,
// LC_ALL and TZ, and its configured "env" on top.
//
// # Behaviour
//
// Run starts every server (a stdio server as a child in a process group
// of its own, its stderr logged at debug level, 1 KiB a line and 20 lines
// a second at most) or connects to it, initialises the session (MCP
// revision 2025-11-25, the latest with a stateful session and ping) and
// lists its tools. The server's tools are offered while it is up and
// listed again when it sends notifications/tools/list_changed. A server
// is dead when its process exits, its session ends, it does not answer
// a ping within 10 s (every PingInterval, and at once after a call failed
// without an answer), or a write to its stdin takes over 10 s. Its tools
// are withdrawn, it is stopped, and it is started again after a backoff:
// MinBackoff doubling to MaxBackoff, jittered down by up to half, and
// back to MinBackoff once a server stayed up for MaxBackoff.
//
// Names: a tool is offered under its own name, with any character that
// model APIs refuse (outside A-Z a-z 0-9 _ -) replaced by "_", cut to 64.
// A name that two servers give is, for both, prefixed with the server's
// name and "__" (so "a__search" and "b__search"), whichever came up
// first: no name depends on the order servers start in. A clash that
// remains leaves the later tool (by server name) out, with a warning.
//
// A call: the arguments must be a JSON object (empty means {}) of at
// most 1 MiB that matches the tool's input schema, else the error wraps
// ErrInvalidArguments, says what is wrong, and the server is not called.
// A schema the validator cannot compile is logged, and then the server
// checks the arguments itself. The call has CallTimeout; a result marked
// isError is returned as an error with its text. The output is the
// result's text, other content described (an image as "[image
// image/png, 3.9 KB]"), cut to MaxOutput bytes with a note saying so.
// Messages from a server are read up to 16 MiB each (the SDK's bound).
//
// Stopping (at Run's end, or for a restart): in-flight calls are
// cancelled, the session closed, which closes a stdio server's stdin;
// the server gets StopTimeout to exit, then SIGTERM and StopTimeout
// again, then SIGKILL, and whatever remains in its process group is
// killed. On Linux a stdio server also dies with Parley (Pdeathsig), when
// Parley is killed without the chance to stop it.
//
// # The SDK
//
// The official Go SDK (github.com/modelcontextprotocol/go-sdk, v1.8.0)
// rather than mark3labs/mcp-go, for these reasons: it is the project's
// own, maintained with the specification (this version already speaks
// the 2026-07-28 revision, and 2025-11-25 which we ask for); its client
// has each piece this package needs without code of ours on the wire: an
// io transport over pipes we own, a Streamable HTTP transport that takes
// our http.Client, paginated tools/list, list_changed handlers, and calls
// that are retired at once when their context ends (a server that never
// answers cannot hold a session's close); and it validates schemas with
// github.com/google/jsonschema-go, which we use for the arguments too
// (drafts 2020-12 and 7, no remote references). mcp-go has the same
// features in its own shapes; nothing it has was missing here. The SDK's
// CommandTransport is not used: it signals the leader alone, where a
// server started through npx or a shell leaves children behind.
//
// # Goroutines
//
// Run starts one supervisor per server; each ends when Run's ctx ends,
// after its server has stopped. A live stdio server has two more, one
// waiting for the process's exit and one reading its stderr; both end
// when the process group is gone and its pipes are closed, before the
// supervisor moves on. Every live session has one waiting for the
// session's end, which comes when the supervisor closes it at the
// latest. The SDK's own goroutines end when the session closes, except
// a cancelled call's notification to the server, which ends within 5 s.
//
// Tools, Call and Run are safe for concurrent use; Tools returns a copy
// of a snapshot taken when a server's list changed, so it costs a slice
// copy. Run may be called once.
package mcp
