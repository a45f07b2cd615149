// Package openai holds clients for OpenAI-compatible HTTP servers (Ollama,
// vLLM, llama.cpp server, OpenAI, DeepSeek, Doubao/Ark), chosen by base URL:
// Chat streams chat completions, one conversation per call; Completions
// sends a list of prompts in one call, as vLLM accepts, and demultiplexes
// the streamed choices by index.
//
// Both are safe for concurrent use. The API key is sent as a bearer token
// and never appears in an error or a log line.
package openai
