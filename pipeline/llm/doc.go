// Package llm declares what the turn engine asks of a language model: a
// conversation of Messages in, a reply streamed out, for one conversation
// or a batch of them (LLM). Providers implement it: pipeline/openai
// (OpenAI-compatible servers) and pipeline/local (the offline responder).
//
// Only types and an interface live here; providers say whether their
// implementations are safe for concurrent use (all of ours are).
package llm
