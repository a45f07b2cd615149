package mcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// passedEnv are the variables of Parley's environment that a stdio server
// gets, besides its configured env: enough to find programs and a home,
// never Parley's own settings and keys.
var passedEnv = []string{"HOME", "LANG", "LC_ALL", "LOGNAME", "PATH", "SHELL", "TERM", "TMPDIR", "TZ", "USER"}

// process is a running stdio server: the command in a process group of
// its own, its stdin and stdout as the MCP transport, its stderr logged.
type process struct {
	cmd     *exec.Cmd
	stdin   *os.File // ours: the child's stdin
	stdout  *os.File // ours: the child's stdout
	stderr  *os.File // ours: the child's stderr
	exited  chan struct{}
	waitErr error // set before exited closes
	wg      sync.WaitGroup
}

// startProcess starts s.Command. Its goroutines (waiting for the exit,
// logging stderr) end when the process group has exited and stop has run.
func startProcess(s Server, log *slog.Logger) (*process, error) {
	cmd := exec.Command(s.Command, s.Args...)
	cmd.Env = childEnv(os.Getenv, s.Env)
	cmd.Dir = s.Cwd
	cmd.SysProcAttr = sysProcAttr()
	p := &process{cmd: cmd, exited: make(chan struct{})}
	// Pipes of our own (not exec's StdinPipe/StdoutPipe): Wait does not
	// close them under a reader, and no copying goroutine of exec's waits
	// for a grandchild that keeps them open. files holds three read/write
	// pairs: stdin, stdout, stderr.
	var files [6]*os.File
	for i := 0; i < 3; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			closeFiles(files[:]...)
			return nil, err
		}
		files[2*i], files[2*i+1] = r, w
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = files[0], files[3], files[5]
	p.stdin, p.stdout, p.stderr = files[1], files[2], files[4]
	err := cmd.Start()
	closeFiles(files[0], files[3], files[5]) // the child has its copies
	if err != nil {
		closeFiles(p.stdin, p.stdout, p.stderr)
		return nil, err
	}
	p.wg.Add(2)
	go func() { // ends when the child exits
		defer p.wg.Done()
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	go func() { // ends at EOF (every writer gone) or when stop closes the pipe
		defer p.wg.Done()
		logStderr(p.stderr, log)
	}()
	return p, nil
}

func closeFiles(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// writeTimeout bounds one write to a stdio server's stdin: a server
// that stops reading is dead (the SDK's writes take no deadline of their
// own, and a full pipe would block every call).
const writeTimeout = 10 * time.Second

// transport is the MCP transport over the process's stdin and stdout.
func (p *process) transport() sdk.Transport {
	return &sdk.IOTransport{Reader: p.stdout, Writer: deadlineWriter{p.stdin, writeTimeout}}
}

// deadlineWriter gives each write to f a deadline (f is a pipe, which
// supports them).
type deadlineWriter struct {
	f *os.File
	d time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	if err := w.f.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.f.Write(b)
}

func (w deadlineWriter) Close() error { return w.f.Close() }

// stop ends the process as the MCP specification asks: stdin closed (the
// session's Close did it, or we do), then SIGTERM, then SIGKILL, to the
// whole process group, each after grace. It returns once the process has
// been reaped and its goroutines have ended.
func (p *process) stop(grace time.Duration) {
	p.stdin.Close()
	if !p.waitExit(grace) {
		signalGroup(p.cmd.Process, sigTerm)
		if !p.waitExit(grace) {
			signalGroup(p.cmd.Process, sigKill)
			<-p.exited
		}
	}
	// The leader is gone; what it left in its group goes too (a wrapper
	// such as npx or sh leaves its child).
	signalGroup(p.cmd.Process, sigKill)
	p.stdout.Close()
	p.stderr.Close()
	p.wg.Wait()
}

func (p *process) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}

// exitError says how the process ended, once it has.
func (p *process) exitError() error {
	select {
	case <-p.exited:
	default:
		return nil
	}
	if p.waitErr == nil {
		return errors.New("the process exited")
	}
	return fmt.Errorf("the process ended: %w", p.waitErr)
}

// childEnv is the environment of a stdio server: passedEnv from getenv,
// then the configured variables, which win.
func childEnv(getenv func(string) string, extra map[string]string) []string {
	var env []string
	for _, k := range passedEnv {
		if _, over := extra[k]; !over {
			if v := getenv(k); v != "" {
				env = append(env, k+"="+v)
			}
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// Bounds of what a server's stderr puts into the log.
const (
	stderrLine      = 1024 // bytes of a line logged; the rest is cut
	stderrPerSecond = 20   // lines logged a second; the others are counted
)

// logStderr logs r's lines at debug level, within the bounds above, and
// reads until EOF or an error, so that the child never blocks on a full
// pipe.
func logStderr(r io.Reader, log *slog.Logger) {
	br := bufio.NewReaderSize(r, stderrLine)
	var window time.Time
	var n, dropped int
	cut := false // in the middle of a line too long to log whole
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && !cut {
			if now := time.Now(); now.Sub(window) >= time.Second {
				if dropped > 0 {
					log.Debug("server stderr: lines not logged", "count", dropped)
				}
				window, n, dropped = now, 0, 0
			}
			if n++; n <= stderrPerSecond {
				log.Debug("server stderr", "line", string(trimNewline(line)), "cut", errors.Is(err, bufio.ErrBufferFull))
			} else {
				dropped++
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			cut = true
		case err != nil:
			return
		default:
			cut = false
		}
	}
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
