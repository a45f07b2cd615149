package tools_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/parleyhq/parley/internal/testkit/fakes"
	"github.com/parleyhq/parley/pipeline/llm"
	"github.com/parleyhq/parley/pipeline/tools"
)

func names(ts []llm.Tool) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func TestOffered(t *testing.T) {
	box := &fakes.Toolbox{Server: "everything", Offered: []llm.Tool{{Name: "echo"}, {Name: "add"}, {Name: "sleep"}}}
	list := func(s ...string) *[]string { return &s }
	for _, c := range []struct {
		name string
		sel  *[]string
		want []string
	}{
		{"no selection: all", nil, []string{"echo", "add", "sleep"}},
		{"empty: none", list(), []string{}},
		{"one tool", list("add"), []string{"add"}},
		{"two tools, in the toolbox's order", list("sleep", "echo"), []string{"echo", "sleep"}},
		{"a whole server", list("everything.*"), []string{"echo", "add", "sleep"}},
		{"another server's", list("other.*"), []string{}},
		{"a name nobody offers", list("teleport"), []string{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := names(tools.Offered(box, c.sel)); !slices.Equal(got, c.want) {
				t.Fatalf("offered %v, want %v", got, c.want)
			}
			for _, n := range []string{"echo", "add", "sleep"} {
				if got, want := tools.Allowed(box, c.sel, n), slices.Contains(c.want, n); got != want {
					t.Errorf("Allowed(%s) = %v", n, got)
				}
			}
		})
	}
	if tools.Offered(nil, nil) != nil {
		t.Fatal("no toolbox offers tools")
	}
}

func TestCheck(t *testing.T) {
	box := &fakes.Toolbox{Server: "everything", Offered: []llm.Tool{{Name: "echo"}}}
	for _, c := range []struct {
		name  string
		box   tools.Toolbox
		names []string
		bad   []string // what the error names; none: no error
	}{
		{"none", box, nil, nil},
		{"a tool and a server", box, []string{"echo", "everything.*"}, nil},
		{"unknown ones named", box, []string{"echo", "teleport", "nowhere.*"}, []string{`"teleport"`, `"nowhere.*"`, "servers: everything"}},
		{"a server's name without .*", box, []string{"everything"}, []string{`"everything"`}},
		{"no toolbox", nil, []string{"echo"}, []string{"no MCP servers configured", `"echo"`}},
		{"no toolbox, nothing asked", nil, []string{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := tools.Check(c.box, c.names)
			if (err != nil) != (len(c.bad) > 0) {
				t.Fatalf("error %v", err)
			}
			for _, b := range c.bad {
				if !strings.Contains(err.Error(), b) {
					t.Errorf("%q does not name %s", err, b)
				}
			}
		})
	}
}
