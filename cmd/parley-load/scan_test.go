package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// The events as the server writes them, and shapes it could write.
var textEventCases = []struct {
	name, in string
	want     textEvent
}{
	{"delta", `{"id":"1-0","type":"reply.delta","turn":12,"text":"a \"turn\":5 }"}`, textEvent{Type: "reply.delta", Turn: 12}},
	{"done", `{"id":"1-1","type":"reply.done","turn":7,"text":"hi"}`, textEvent{Type: "reply.done", Turn: 7}},
	{"transcript", `{"id":"1-2","type":"transcript","turn":3,"text":"client 1 turn 2","final":true}`, textEvent{Type: "transcript", Text: "client 1 turn 2", Turn: 3, Final: true}},
	{"busy", `{"type":"error","code":"busy","message":"x","retry_after_ms":1000}`, textEvent{Type: "error", Code: "busy"}},
	{"failed turn", `{"type":"error","code":"upstream","message":"a \"turn\":9","turn":4}`, textEvent{Type: "error", Code: "upstream", Turn: 4}},
	{"nested and spaced", ` { "type" : "session" , "x" : {"turn":5,"a":[1,{"b":"}"}]} , "turn" : 2 } `, textEvent{Type: "session", Turn: 2}},
	{"escaped text", `{"type":"transcript","text":"caf\u00e9 \\ ok","final":false}`, textEvent{Type: "transcript", Text: "café \\ ok"}},
	{"escaped key", `{"t\u0079pe":"error","code":"busy"}`, textEvent{Type: "error", Code: "busy"}},
	{"keys in any case", `{"TYPE":"reply.done","Turn":3}`, textEvent{Type: "reply.done", Turn: 3}},
	{"null fields", `{"type":null,"turn":null,"final":null}`, textEvent{}},
	{"empty", `{}`, textEvent{}},
}

func TestTextEventDecode(t *testing.T) {
	for _, tc := range textEventCases {
		t.Run(tc.name, func(t *testing.T) {
			var ev textEvent
			if !ev.decode([]byte(tc.in)) || ev != tc.want {
				t.Fatalf("decode(%s) = %+v, want %+v", tc.in, ev, tc.want)
			}
		})
	}
}

func TestTextEventDecodeRefuses(t *testing.T) {
	for _, in := range []string{``, `[]`, `"x"`, `{`, `{"type":"x"`, `{"type":}`, `{"turn":"3"}`, `{"turn":1.5}`, `{"final":1}`, `{"text":5}`, `{"a":1}x`, `{"a" 1}`, `{"a":1;"b":2}`} {
		t.Run(in, func(t *testing.T) {
			var ev textEvent
			if ev.decode([]byte(in)) {
				t.Fatalf("decode(%q) = %+v, true; want false", in, ev)
			}
		})
	}
}

// FuzzTextEventDecode: for a JSON object, the scan reads what
// encoding/json reads, and agrees on whether it can be read.
func FuzzTextEventDecode(f *testing.F) {
	for _, tc := range textEventCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		var obj map[string]json.RawMessage
		if json.Unmarshal(b, &obj) != nil {
			return // not an object: the scan may refuse or read it
		}
		var got, want textEvent
		okGot, okWant := got.decode(b), json.Unmarshal(b, &want) == nil
		if want.Type != "transcript" && got.Text == "" {
			want.Text = "" // only a transcript's text is read
		}
		if okGot != okWant || (okGot && got != want) {
			t.Fatalf("decode(%q) = %+v, %v; encoding/json %+v, %v", in, got, okGot, want, okWant)
		}
	})
}

// readFrame reuses its buffer: each message whole, whatever the size of
// the one before it.
func TestReadFrame(t *testing.T) {
	sizes := []int{0, 1, 511, 512, 513, 4096, 70000, 3, 70001, 10}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for i, n := range sizes {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(strings.Repeat(string(rune('a'+i)), n)))
		}
	}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	var buf []byte
	for i, n := range sizes {
		b, err := readFrame(ws, buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if want := strings.Repeat(string(rune('a'+i)), n); string(b) != want {
			t.Fatalf("message %d: %d bytes, want %d of %q", i, len(b), n, rune('a'+i))
		}
		buf = b
	}
	if _, err := readFrame(ws, buf); err == nil {
		t.Fatal("read past the server's close")
	}
}

// BenchmarkTextEventDecode: the scan against encoding/json, the same
// frames (a refusal and a transcript, most of what an overloaded client
// reads).
func BenchmarkTextEventDecode(b *testing.B) {
	for _, tc := range textEventCases[:4] {
		in := []byte(tc.in)
		b.Run(tc.name+"/scan", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var ev textEvent
				ev.decode(in)
			}
		})
		b.Run(tc.name+"/encoding_json", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var ev textEvent
				_ = json.Unmarshal(in, &ev)
			}
		})
	}
}
