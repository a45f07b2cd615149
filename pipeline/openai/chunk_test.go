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

// slowTextChoices is what encoding/json makes of a completion's chunk.
func slowTextChoices(p []byte) ([]fastChoice, bool) {
	var ch completionsChunk
	if decodeChunk(p, &ch) != nil {
		return nil, false
	}
	var out []fastChoice
	for _, c := range ch.Choices {
		out = append(out, fastChoice{index: c.Index, content: c.Text, finished: c.FinishReason != nil && *c.FinishReason != ""})
	}
	return out, true
}

// Chunks as servers send them, and shapes the hand-read path must leave
// to encoding/json.
var chunkCases = []chunkCase{
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

var textChunkCases = []chunkCase{
	{"vllm", `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":1,"text":" world","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}`, true},
	{"vllm end", `{"id":"cmpl-1","choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"length","stop_reason":null}]}`, true},
	{"several", `{"choices":[{"index":0,"text":"a"},{"index":3,"text":"b","finish_reason":"stop"},null,{"text":null,"index":null}]}`, true},
	{"negative index", `{"choices":[{"index":-1,"text":"a"}]}`, true},
	{"escapes", `{"choices":[{"index":0,"text":"\u4f60\n"}]}`, true},
	{"a raw newline", "{\"choices\":[{\"index\":0,\"text\":\"a\nb\"}]}", false},
	{"fraction index", `{"choices":[{"index":1.5,"text":"a"}]}`, false},
	{"exponent index", `{"choices":[{"index":1e2,"text":"a"}]}`, false},
	{"huge index", `{"choices":[{"index":99999999999999999999,"text":"a"}]}`, false},
	{"index a string", `{"choices":[{"index":"1","text":"a"}]}`, false},
	{"folded text", `{"choices":[{"index":0,"Text":"a"}]}`, false},
	{"error", `{"error":{"message":"overloaded"}}`, false},
}

// chunkCase is one chunk, the shape it is read as, and whether it is
// read by hand.
type chunkCase = struct {
	name string
	p    string
	fast bool
}

func TestScanChunk(t *testing.T) {
	shapes := []struct {
		name  string
		shape int
		cases []chunkCase
		slow  func([]byte) ([]fastChoice, bool)
	}{
		{"chat", chatChunkShape, chunkCases, slowChoices},
		{"completions", textChunkShape, textChunkCases, slowTextChoices},
	}
	for _, sh := range shapes {
		for _, tc := range sh.cases {
			t.Run(sh.name+"/"+tc.name, func(t *testing.T) {
				got, ok := scanChunk([]byte(tc.p), nil, sh.shape)
				if ok != tc.fast {
					t.Fatalf("read by hand: %v, want %v", ok, tc.fast)
				}
				if !ok {
					return
				}
				want, wok := sh.slow([]byte(tc.p))
				if !wok || !slices.Equal(got, want) {
					t.Fatalf("by hand %+v, encoding/json %+v (ok %v)", got, want, wok)
				}
			})
		}
	}
}

// What the hand-read path reads, it reads as encoding/json does, in
// either shape.
func FuzzScanChunk(f *testing.F) {
	for _, tc := range chunkCases {
		f.Add([]byte(tc.p))
	}
	for _, tc := range textChunkCases {
		f.Add([]byte(tc.p))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, ok := scanChunk(p, nil, chatChunkShape); ok {
			want, wok := slowChoices(p)
			if !wok || !slices.Equal(got, want) {
				t.Fatalf("%q as chat: by hand %+v, encoding/json %+v (ok %v)", p, got, want, wok)
			}
		}
		if got, ok := scanChunk(p, nil, textChunkShape); ok {
			want, wok := slowTextChoices(p)
			if !wok || !slices.Equal(got, want) {
				t.Fatalf("%q as a completion: by hand %+v, encoding/json %+v (ok %v)", p, got, want, wok)
			}
		}
	})
}

func BenchmarkChunk(b *testing.B) {
	chat, text := []byte(chunkCases[4].p), []byte(textChunkCases[0].p)
	var out []fastChoice
	b.Run("chat/by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _ = scanChunk(chat, out[:0], chatChunkShape)
		}
	})
	b.Run("chat/encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ch chatChunk
			_ = decodeChunk(chat, &ch)
		}
	})
	b.Run("completions/by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, _ = scanChunk(text, out[:0], textChunkShape)
		}
	})
	b.Run("completions/encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ch completionsChunk
			_ = decodeChunk(text, &ch)
		}
	})
}
