package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics table of docs/operations.md must name every metric the code
// declares, and only those: an operator reads it to know what to watch.
func TestOperationsListsEveryMetric(t *testing.T) {
	declared := declaredMetrics(t, "../..")
	if len(declared) < 20 {
		t.Fatalf("only %d metrics found in the code: the scan is broken", len(declared))
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(doc), "## Metrics to watch")
	table, _, _ = strings.Cut(table, "\n## ")
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`(parley_[a-z0-9_]+)(\\{[a-z_,]*\\})?`").FindAllStringSubmatch(table, -1) {
		documented[m[1]] = true
	}
	for _, name := range declared {
		if !documented[name] {
			t.Errorf("%s is declared in the code but not in docs/operations.md's metrics table", name)
		}
		delete(documented, name)
	}
	for name := range documented {
		t.Errorf("%s is in docs/operations.md's metrics table but the code declares no such metric", name)
	}
}

// declaredMetrics finds the prometheus.*Opts literals in the non-test Go
// files under root and returns their full names.
func declaredMetrics(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.CompositeLit); ok && isOpts(lit.Type) {
				names = append(names, optsName(lit))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func isOpts(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && pkg.Name == "prometheus" && strings.HasSuffix(sel.Sel.Name, "Opts")
}

// optsName is the metric's name from the literal's Namespace, Subsystem
// and Name, as prometheus builds it.
func optsName(lit *ast.CompositeLit) string {
	parts := map[string]string{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		key, _ := kv.Key.(*ast.Ident)
		val, _ := kv.Value.(*ast.BasicLit)
		if key != nil && val != nil && val.Kind == token.STRING {
			parts[key.Name], _ = strconv.Unquote(val.Value)
		}
	}
	return prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"])
}
