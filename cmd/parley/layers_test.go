package main

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/parleyhq/parley"

// The layers of docs/design.md: the core (pipeline/..., media/...) never
// imports a front end (signaling/...); the call and the turn engine import
// no protocol and no codec, directly or not; front ends do not import
// each other; what they share (sharedBySignaling) imports none of them.
func TestLayers(t *testing.T) {
	deps := moduleImports(t, "../..")
	codecs := []string{"media/opus", "media/g711", "media/pcm"}
	for pkg := range deps {
		closure := reach(deps, pkg)
		switch {
		case strings.HasPrefix(pkg, "pipeline") || strings.HasPrefix(pkg, "media"):
			for dep := range closure {
				if strings.HasPrefix(dep, "signaling") {
					t.Errorf("%s imports %s: the core must not know a front end", pkg, dep)
				}
			}
		case frontEnd(pkg) != "":
			for dep := range closure {
				if f := frontEnd(dep); f != "" && f != frontEnd(pkg) {
					t.Errorf("%s imports %s: front ends stand side by side", pkg, dep)
				}
			}
		case strings.HasPrefix(pkg, "signaling"):
			for dep := range closure {
				if frontEnd(dep) != "" {
					t.Errorf("%s imports %s: what front ends share knows none of them", pkg, dep)
				}
			}
		}
		if pkg == "pipeline/call" || pkg == "pipeline/turn" {
			for dep := range closure {
				for _, c := range codecs {
					if dep == c {
						t.Errorf("%s imports %s: it must know no codec", pkg, dep)
					}
				}
			}
		}
	}
	if len(deps["pipeline/call"]) == 0 || len(deps["signaling/parley"]) == 0 {
		t.Fatal("the scan found no imports: it is broken")
	}
}

// sharedBySignaling are the packages under signaling/ that are not front
// ends: what front ends share (certificates, WebRTC plumbing).
var sharedBySignaling = []string{"signaling/certs", "signaling/rtc"}

// frontEnd is the front end a package belongs to (signaling/<name>/...),
// or "" for one that is none.
func frontEnd(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, "signaling/")
	if !ok {
		return ""
	}
	for _, s := range sharedBySignaling {
		if pkg == s || strings.HasPrefix(pkg, s+"/") {
			return ""
		}
	}
	return strings.SplitN(rest, "/", 2)[0]
}

// moduleImports maps each package of the module (by its path below the
// module) to the module's packages its non-test files import.
func moduleImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	deps := map[string][]string{}
	ctx := build.Default
	ctx.BuildTags = append(ctx.BuildTags, "nolibopusfile")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		p, err := ctx.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		for _, imp := range p.Imports {
			if dep, ok := strings.CutPrefix(imp, module+"/"); ok {
				deps[rel] = append(deps[rel], dep)
			}
		}
		if _, ok := deps[rel]; !ok {
			deps[rel] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return deps
}

// reach is every package that pkg imports, directly or not.
func reach(deps map[string][]string, pkg string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, d := range deps[p] {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(pkg)
	return seen
}
