package npm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func project(t *testing.T, lock string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"package.json": `{"name": "p", "private": true}`, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The install folder depends on the lockfile, and lives in the user's
// cache, outside the project.
func TestDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	a, err := Dir(project(t, `{"lockfileVersion": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Dir(project(t, `{"lockfileVersion": 3, "packages": {}}`))
	a2, _ := Dir(project(t, `{"lockfileVersion": 3}`))
	if a == b || a != a2 {
		t.Errorf("Dir: %s and %s for different lockfiles, %s for a's again", a, b, a2)
	}
	if !strings.HasPrefix(a, filepath.Join(cache, "parley", "npm")+string(filepath.Separator)) {
		t.Errorf("Dir = %s; want it under the user cache %s", a, cache)
	}
}

// Once installed, a project is used as it is: no npm, no network.
func TestInstallUsesTheCache(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("PATH", t.TempDir()) // no npm on it
	p := project(t, `{"lockfileVersion": 3}`)
	if _, err := Install(p); err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("Install without npm or a cache: %v; want an error pointing to make deps", err)
	}
	dir, _ := Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, marker), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Install(p)
	if err != nil || got != dir {
		t.Fatalf("Install with the cache = %q, %v; want %q", got, err, dir)
	}
}
