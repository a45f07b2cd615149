package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sort"
	"time"
)

// Config is the Manager's configuration. A zero field means its default.
type Config struct {
	Servers []Server // from LoadConfig or ParseConfig

	CallTimeout    time.Duration // deadline of one tool call; 0: 30s
	MaxOutput      int           // bytes of a tool's output given to the model, the rest cut; 0: 16 KiB
	ConnectTimeout time.Duration // to start or reach a server, initialise it and list its tools; 0: 30s
	PingInterval   time.Duration // a server that does not answer a ping is restarted; 0: 15s
	MinBackoff     time.Duration // first wait before a restart (jittered, doubling); 0: 500ms
	MaxBackoff     time.Duration // longest wait between restarts; 0: 30s
	StopTimeout    time.Duration // a stdio server gets this to exit after its stdin closes, and again after SIGTERM; 0: 2s
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CallTimeout, 30*time.Second)
	def(&c.ConnectTimeout, 30*time.Second)
	def(&c.PingInterval, 15*time.Second)
	def(&c.MinBackoff, 500*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	def(&c.StopTimeout, 2*time.Second)
	if c.MaxOutput <= 0 {
		c.MaxOutput = 16 << 10
	}
	return c
}

// Server is one MCP server of the configuration: a command run over stdio,
// or a Streamable HTTP endpoint.
type Server struct {
	Name string

	Command string            // stdio: the program, found on PATH
	Args    []string          // stdio
	Env     map[string]string // stdio: added to the few variables passed on (see package doc)
	Cwd     string            // stdio: working directory; empty: Parley's

	URL     string            // Streamable HTTP endpoint, http:// or https://
	Headers map[string]string // HTTP: sent with every request to the endpoint's host
}

// stdio says which transport the server uses.
func (s Server) stdio() bool { return s.Command != "" }

// serverFields are the fields of a server entry that Parley reads.
var serverFields = []string{"command", "args", "env", "cwd", "url", "headers", "type", "disabled"}

// LoadConfig reads the file of -mcp-config. The warnings name what it
// ignored (fields of other clients, servers marked disabled).
func LoadConfig(path string) (servers []Server, warnings []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("mcp config: %w", err)
	}
	servers, warnings, err = ParseConfig(b)
	if err != nil {
		return nil, nil, fmt.Errorf("mcp config %s: %w", path, err)
	}
	return servers, warnings, nil
}

// ParseConfig parses a configuration in the shape MCP clients share:
//
//	{"mcpServers": {"NAME": {"command": "...", "args": [...], "env": {...}},
//	                "NAME2": {"url": "https://...", "headers": {...}}}}
//
// Servers are returned sorted by name.
func ParseConfig(data []byte) (servers []Server, warnings []string, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, nil, jsonError(data, err)
	}
	raw, ok := top["mcpServers"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil, errors.New(`no "mcpServers" object`)
	}
	for k := range top {
		if k != "mcpServers" {
			warnings = append(warnings, fmt.Sprintf("top-level field %q ignored", k))
		}
	}
	var entries map[string]map[string]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, nil, fmt.Errorf(`"mcpServers" must be an object of server objects: %w`, err)
	}
	for name, fields := range entries {
		s, skip, warn, err := parseServer(name, fields)
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, warn...)
		if !skip {
			servers = append(servers, s)
		}
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].Name < servers[j].Name })
	sort.Strings(warnings)
	return servers, warnings, nil
}

// parseServer reads one entry; skip is true when it is disabled.
func parseServer(name string, fields map[string]json.RawMessage) (s Server, skip bool, warnings []string, err error) {
	fail := func(format string, a ...any) (Server, bool, []string, error) {
		return Server{}, false, nil, fmt.Errorf("mcp server %q: %s", name, fmt.Sprintf(format, a...))
	}
	if name == "" {
		return fail("a server needs a name")
	}
	if fields == nil {
		return fail("must be an object")
	}
	var typ string
	var disabled bool
	s.Name = name
	for _, f := range []struct {
		key string
		dst any
	}{{"command", &s.Command}, {"args", &s.Args}, {"env", &s.Env}, {"cwd", &s.Cwd},
		{"url", &s.URL}, {"headers", &s.Headers}, {"type", &typ}, {"disabled", &disabled}} {
		if v, ok := fields[f.key]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return fail("field %q: %v", f.key, err)
			}
		}
	}
	for k := range fields {
		if !slices.Contains(serverFields, k) {
			warnings = append(warnings, fmt.Sprintf("mcp server %q: field %q ignored", name, k))
		}
	}
	if disabled {
		return s, true, append(warnings, fmt.Sprintf("mcp server %q: disabled", name)), nil
	}
	if err := s.check(typ); err != nil {
		return fail("%v", err)
	}
	return s, false, warnings, nil
}

// check holds the entry to one transport and its fields.
func (s Server) check(typ string) error {
	switch {
	case s.Command != "" && s.URL != "":
		return errors.New(`set "command" (stdio) or "url" (Streamable HTTP), not both`)
	case s.Command == "" && s.URL == "":
		return errors.New(`needs "command" (stdio) or "url" (Streamable HTTP)`)
	}
	switch typ {
	case "", "stdio", "http", "streamable-http", "streamableHttp":
	case "sse":
		return errors.New(`"type": "sse" (the legacy HTTP+SSE transport) is not supported; use the server's Streamable HTTP endpoint`)
	default:
		return fmt.Errorf(`"type" %q: use "stdio" or "http" (or leave it out)`, typ)
	}
	if s.stdio() {
		if typ != "" && typ != "stdio" {
			return fmt.Errorf(`"type" %q with "command": a command is a stdio server`, typ)
		}
		if s.Headers != nil {
			return errors.New(`"headers" is for a "url" server`)
		}
		return nil
	}
	if typ == "stdio" {
		return errors.New(`"type": "stdio" needs "command", not "url"`)
	}
	if s.Args != nil || s.Env != nil || s.Cwd != "" {
		return errors.New(`"args", "env" and "cwd" are for a "command" server`)
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf(`"url" %q: want an http:// or https:// URL`, s.URL)
	}
	return nil
}

// jsonError says where in data a syntax error is.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, err)
	}
	return err
}
