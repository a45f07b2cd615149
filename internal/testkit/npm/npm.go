package npm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// marker is written into an install folder once npm ci has finished.
const marker = ".parley-installed"

// needNode is what a failure says when Node.js or npm is missing.
const needNode = "`make deps` installs Node.js and npm"

var installing sync.Mutex // one install at a time in this process

// Dir is where the project in project (a folder with package.json and
// package-lock.json) is, or would be, installed: the folder that holds
// its node_modules.
func Dir(project string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("npm: no cache folder: %w", err)
	}
	h := sha256.New()
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(project, name))
		if err != nil {
			return "", fmt.Errorf("npm: project %s: %w", project, err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return filepath.Join(cache, "parley", "npm", hex.EncodeToString(h.Sum(nil))[:32]), nil
}

// Install installs project into the cache, unless it is there already,
// and returns the install folder (see Dir).
func Install(project string) (string, error) {
	dir, err := Dir(project)
	if err != nil {
		return "", err
	}
	if installed(dir) {
		return dir, nil
	}
	installing.Lock()
	defer installing.Unlock()
	if installed(dir) { // another goroutine did it meanwhile
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm: npm is not on PATH (%v); %s", err, needNode)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("npm: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-")
	if err != nil {
		return "", fmt.Errorf("npm: %w", err)
	}
	defer os.RemoveAll(tmp) // gone once renamed; left over only on failure
	if err := ci(npm, project, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil && !installed(dir) {
		return "", fmt.Errorf("npm: %w", err)
	}
	return dir, nil
}

// ci copies the project's two files into dir and runs npm ci there.
func ci(npm, project, dir string) error {
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(project, name))
		if err != nil {
			return fmt.Errorf("npm: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("npm: %w", err)
		}
	}
	cmd := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm: npm ci for %s: %v\n%s", project, err, out.Bytes())
	}
	return os.WriteFile(filepath.Join(dir, marker), nil, 0o644)
}

func installed(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, marker))
	return err == nil
}

// Bin installs project if needed and returns the path of the executable
// name from its node_modules/.bin. It fails tb, saying that `make deps`
// installs them, when Node.js or npm is missing: a test that needs them
// never skips.
func Bin(tb testing.TB, project, name string) string {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		tb.Fatalf("npm: node is not on PATH (%v); %s", err, needNode)
	}
	dir, err := Install(project)
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(dir, "node_modules", ".bin", name)
	if _, err := os.Stat(bin); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			tb.Fatalf("npm: project %s has no executable %q in node_modules/.bin", project, name)
		}
		tb.Fatal(err)
	}
	return bin
}
