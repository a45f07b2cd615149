package tools

import (
	"fmt"
	"slices"
	"strings"

	"github.com/parleyhq/parley/pipeline/llm"
)

// A selection is the list of server tools that a session's model is
// offered (session.Settings.ServerTools). Each entry is a tool's name as
// the model sees it ("echo"), or a server's name from the configuration
// followed by ".*" ("everything.*"): every tool of that server, now and
// after its list changes. No selection (nil) offers every tool; an empty
// one offers none.

// AllOf is the entry that selects every tool of a server.
func AllOf(server string) string { return server + ".*" }

// Offered is what a session with selection sel is offered of tb's tools
// now: all of them when sel is nil.
func Offered(tb Toolbox, sel *[]string) []llm.Tool {
	if tb == nil {
		return nil
	}
	all := tb.Tools()
	if sel == nil {
		return all
	}
	var out []llm.Tool
	for _, t := range all {
		if selects(*sel, t.Name, tb.Origin(t.Name)) {
			out = append(out, t)
		}
	}
	return out
}

// Allowed reports whether selection sel lets the session's model call
// the tool of that name, when tb offers it.
func Allowed(tb Toolbox, sel *[]string, name string) bool {
	return sel == nil || selects(*sel, name, tb.Origin(name))
}

func selects(sel []string, name, server string) bool {
	for _, s := range sel {
		if s == name || server != "" && s == AllOf(server) {
			return true
		}
	}
	return false
}

// Check says what in names selects nothing of tb (nil: no tools): an
// error naming the unknown entries, or nil.
func Check(tb Toolbox, names []string) error {
	var unknown []string
	for _, n := range names {
		if !known(tb, n) {
			unknown = append(unknown, fmt.Sprintf("%q", clip(n, 70)))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	if tb == nil {
		return fmt.Errorf("this server runs no tools of its own (it has no MCP servers configured), so there is no %s", strings.Join(unknown, ", "))
	}
	return fmt.Errorf("unknown server tool %s: an entry is a tool's name as the model sees it, or a server's name followed by \".*\" (servers: %s)",
		strings.Join(unknown, ", "), strings.Join(tb.Servers(), ", "))
}

func known(tb Toolbox, name string) bool {
	if tb == nil {
		return false
	}
	if server, ok := strings.CutSuffix(name, ".*"); ok && slices.Contains(tb.Servers(), server) {
		return true
	}
	return tb.Origin(name) != ""
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
