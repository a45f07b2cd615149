package mcp

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestRender(t *testing.T) {
	size := int64(9)
	for _, c := range []struct {
		name string
		res  *sdk.CallToolResult
		want string
	}{
		{"text", &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "a"}, &sdk.TextContent{Text: "b"}}}, "a\nb"},
		{"image", &sdk.CallToolResult{Content: []sdk.Content{&sdk.ImageContent{MIMEType: "image/png", Data: make([]byte, 12<<10)}}}, "[image image/png, 12.0 KB]"},
		{"audio", &sdk.CallToolResult{Content: []sdk.Content{&sdk.AudioContent{Data: make([]byte, 100)}}}, "[audio of unknown type, 100 bytes]"},
		{"link", &sdk.CallToolResult{Content: []sdk.Content{&sdk.ResourceLink{URI: "file:///a.txt", Name: "a.txt", Size: &size}}}, "[resource link file:///a.txt: a.txt]"},
		{"text resource", &sdk.CallToolResult{Content: []sdk.Content{&sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: "mem://x", Text: "hi"}}}}, "[resource mem://x]\nhi"},
		{"blob resource", &sdk.CallToolResult{Content: []sdk.Content{&sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: "mem://y", MIMEType: "application/gzip", Blob: make([]byte, 3<<20)}}}}, "[resource mem://y, application/gzip, 3.0 MB]"},
		{"structured only", &sdk.CallToolResult{StructuredContent: map[string]any{"t": 21}}, `{"t":21}`},
		{"empty", &sdk.CallToolResult{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := render(c.res, 1<<10); got != c.want {
				t.Errorf("render = %q; want %q", got, c.want)
			}
		})
	}
}

func TestCapText(t *testing.T) {
	s := strings.Repeat("é", 1000) // two bytes each
	got := capText(s, 101)
	if len(got) > 101 || !utf8.ValidString(got) || !strings.HasSuffix(got, "[output cut: the first 101 of 2000 bytes]") {
		t.Errorf("capText = %q (%d bytes)", got, len(got))
	}
	if got := capText("short", 101); got != "short" {
		t.Errorf("capText(short) = %q", got)
	}
}

func TestCheckArguments(t *testing.T) {
	sc, err := compile(map[string]any{"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}})
	if err != nil || sc.resolved == nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args string
		ok   bool
	}{
		{``, true}, {`  `, true}, {`{"n": 3}`, true},
		{`{"n": 3.5}`, false}, {`null`, false}, {`"x"`, false}, {`{"n": 1} {}`, false},
		{`{"n": "` + strings.Repeat("x", maxArguments) + `"}`, false},
	} {
		_, err := sc.check(json.RawMessage(c.args))
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalidArguments)) {
			t.Errorf("check(%.40s) = %v; want ok %v", c.args, err, c.ok)
		}
	}
	// A schema the validator cannot compile still lets objects through.
	sc, err = compile(map[string]any{"type": "object", "$ref": "https://example.com/remote.json"})
	if err == nil || sc.resolved != nil {
		t.Fatalf("a remote $ref compiled: %v", err)
	}
	if _, err := sc.check(json.RawMessage(`{"any": 1}`)); err != nil {
		t.Errorf("check with an uncompiled schema: %v", err)
	}
	if _, err := sc.check(json.RawMessage(`[1]`)); err == nil {
		t.Errorf("an array passed an uncompiled schema")
	}
}

// Names as given; characters model APIs refuse replaced; a clash prefixed
// for both servers; what still clashes left out.
func TestToolNames(t *testing.T) {
	m, err := New(Config{Servers: []Server{{Name: "b", Command: "x"}, {Name: "a.1", Command: "x"}, {Name: "c", Command: "x"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := func(i int, names ...string) {
		var ts []tool
		for _, n := range names {
			ts = append(ts, tool{name: n, schema: schema{params: json.RawMessage(`{"type":"object"}`)}})
		}
		m.servers[i].tools = ts
	}
	set(0, "search", "get.time", strings.Repeat("long", 20)) // "a.1"
	set(1, "search", "only_b")                               // "b"
	set(2, "a_1__search", "c")                               // "c": clashes with a.1's prefixed name
	m.rebuild()
	got := names(m.Tools())
	want := []string{"a_1__search", "b__search", "c", "get_time", strings.Repeat("long", 16), "only_b"}
	if !slices.Equal(got, want) {
		t.Errorf("names = %q\nwant %q", got, want)
	}
	if e := m.catalog.Load().byName["get_time"]; e.name != "get.time" || e.srv.cfg.Name != "a.1" {
		t.Errorf("get_time calls %q on %q; want get.time on a.1", e.name, e.srv.cfg.Name)
	}
	set(0)
	m.rebuild()
	if got := names(m.Tools()); !slices.Equal(got, []string{"a_1__search", "c", "only_b", "search"}) {
		t.Errorf("with a.1 down: names = %q", got)
	}
	// Origin: the server that offers a name now, else the last that did;
	// a name never offered has none.
	for name, want := range map[string]string{"a_1__search": "c", "search": "b", "b__search": "b", "get_time": "a.1", "get.time": "", "nothing": ""} {
		if got := m.Origin(name); got != want {
			t.Errorf("Origin(%q) = %q, want %q", name, got, want)
		}
	}
	if got := m.Servers(); !slices.Equal(got, []string{"a.1", "b", "c"}) {
		t.Errorf("Servers() = %q", got)
	}
}

func TestBackoff(t *testing.T) {
	min, max := 500*time.Millisecond, 30*time.Second
	for n, ceiling := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		for range 100 {
			if d := backoff(n, min, max); d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(%d) = %v; want in [%v, %v]", n, d, ceiling/2, ceiling)
			}
		}
	}
	for range 100 {
		if d := backoff(40, min, max); d < max/2 || d > max {
			t.Fatalf("backoff(40) = %v; want in [%v, %v]", d, max/2, max)
		}
	}
}

// A write to a server that stops reading ends at its deadline.
func TestDeadlineWriter(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dw := deadlineWriter{w, 100 * time.Millisecond}
	defer dw.Close()
	_, err = dw.Write(make([]byte, 4<<20)) // more than a pipe holds; nobody reads
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write = %v; want os.ErrDeadlineExceeded", err)
	}
}
