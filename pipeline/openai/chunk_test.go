package openai

import (
	"slices"
	"testing"
)

// slowChoices is what encoding/json makes of p, in fastChoice's terms;
// ok false when it fails or p calls a tool.
func slowChoices(p []byte) ([]fastChoice, bool) {
	var ch chatChunk
	if decodeChunk(p, &ch) != nil {
		return nil, false
	}
	var out []fastChoice
	for _, c := range ch.Choices {
		if len(c.Delta.ToolCalls) > 0 {
			return nil, false
		}
		out = append(out, fastChoice{content: c.Delta.Content, finished: c.FinishReason != nil && *c.FinishReason != ""})
	}
	return out, true
}

// Chunks as servers send them, and shapes the hand-read path must leave
// to encoding/json.
var chunkCases = []struct {
	name string
	p    string
	fast bool // read by scanChatChunk
}{
	{"openai first", `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_4","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}`, true},
	{"openai text", `{"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}`, true},
	{"openai end", `{"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}`, true},
	{"openai usage", `{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}}}`, true},
	{"ollama", `{"id":"chatcmpl-397","object":"chat.completion.chunk","created":1727280000,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":" world"},"finish_reason":null}]}`, true},
	{"deepseek reasoning", `{"choices":[{"index":0,"delta":{"content":null,"reasoning_content":"Let"},"logprobs":null,"finish_reason":null}]}`, true},
	{"vllm with numbers", `{"choices":[{"index":0,"delta":{"content":"x"},"logprobs":{"content":[{"token":"x","logprob":-0.25e-3,"bytes":[120]}]},"finish_reason":null,"stop_reason":null}],"usage":null}`, true},
	{"escapes", `{"choices":[{"delta":{"content":"line\n\"quoted\"\t\\ \/ \u00e9 \ud83d\ude00"}}]}`, true},
	{"escaped chinese", `{"choices":[{"delta":{"content":"\u4f60\u597d"}}]}`, true},
	{"lone surrogates", `{"choices":[{"delta":{"content":"a\ud800b\udc00c\ud800\u0041"}}]}`, true},
	{"invalid utf-8", "{\"choices\":[{\"delta\":{\"content\":\"a\xffb\xe4\xbdc\"}}]}", true},
	{"two choices", `{"choices":[{"index":0,"delta":{"content":"a"}},null,{"index":1,"delta":null,"finish_reason":"length"}]}`, true},
	{"error null", `{"error":null,"choices":[{"delta":{"content":"a"}}]}`, true},
	{"empty tool calls", `{"choices":[{"delta":{"content":"a","tool_calls":[]}}]}`, true},
	{"null tool calls", `{"choices":[{"delta":{"content":"a","tool_calls":null}}]}`, true},
	{"whitespace", " {\n\"choices\" : [ { \"delta\" : { \"content\" : \"a\" } } ] }\r\n", true},
	{"choices null", `{"choices":null}`, true},

	{"tool call", `{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}`, false},
	{"error", `{"error":{"message":"context length exceeded"}}`, false},
	{"folded key", `{"choices":[{"delta":{"Content":"a"}}]}`, false},
	{"escaped key", `{"choices":[{"delta":{"cont\u0065nt":"a"}}]}`, false},
	{"duplicate key", `{"choices":[{"delta":{"content":"a","content":"b"}}]}`, false},
	{"content a number", `{"choices":[{"delta":{"content":5}}]}`, false},
	{"choices an object", `{"choices":{}}`, false},
	{"trailing data", `{"choices":[]} x`, false},
	{"bad escape", `{"choices":[{"delta":{"content":"\x"}}]}`, false},
	{"control character", "{\"choices\":[{\"delta\":{\"content\":\"a\x01\"}}]}", false},
	{"bad number", `{"choices":[],"n":01}`, false},
	{"truncated", `{"choices":[{"delta":{"content":"a`, false},
	{"not an object", `[1]`, false},
}

func TestScanChatChunk(t *testing.T) {
	for _, tc := range chunkCases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := scanChatChunk([]byte(tc.p), nil)
			if ok != tc.fast {
				t.Fatalf("read by hand: %v, want %v", ok, tc.fast)
			}
			if !ok {
				return
			}
			want, wok := slowChoices([]byte(tc.p))
			if !wok || !slices.Equal(got, want) {
				t.Fatalf("by hand %+v, encoding/json %+v (ok %v)", got, want, wok)
			}
		})
	}
}

// What the hand-read path reads, it reads as encoding/json does.
func FuzzScanChatChunk(f *testing.F) {
	for _, tc := range chunkCases {
		f.Add([]byte(tc.p))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		got, ok := scanChatChunk(p, nil)
		if !ok {
			return
		}
		want, wok := slowChoices(p)
		if !wok || !slices.Equal(got, want) {
			t.Fatalf("%q: by hand %+v, encoding/json %+v (ok %v)", p, got, want, wok)
		}
	})
}

func BenchmarkChatChunk(b *testing.B) {
	p := []byte(chunkCases[4].p)
	b.Run("by hand", func(b *testing.B) {
		var out []fastChoice
		b.ReportAllocs()
		for b.Loop() {
			out, _ = scanChatChunk(p, out[:0])
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ch chatChunk
			_ = decodeChunk(p, &ch)
		}
	})
}
