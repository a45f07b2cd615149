// Package openai holds clients for OpenAI-compatible HTTP servers (Ollama,
// vLLM, llama.cpp server, OpenAI, DeepSeek, Doubao/Ark), chosen by base URL:
// Chat streams chat completions, one conversation per call; Completions
// sends a list of prompts in one call, as vLLM accepts, and demultiplexes
// the streamed choices by index.
//
// Chat calls tools: a request's tools go upstream as OpenAI function
// tools (a top-level "$schema" of their parameters dropped), the history's
// tool calls and results in OpenAI's shape, and the streamed
// delta.tool_calls fragments are joined by index into whole calls,
// emitted when the response finishes. Completions calls none: a prompt
// has no place for tools.
//
// A stream's lines come from a pooled reader, and its chunks of the
// common shape (text and a finish reason, for either client) are read by
// hand (chunk.go); any other chunk is decoded by encoding/json, which
// the hand-read path is fuzzed against. A chat request's body is written
// by hand too (body.go), the bytes encoding/json would write.
//
// Both are safe for concurrent use. The API key is sent as a bearer token
// and never appears in an error or a log line.
package openai
