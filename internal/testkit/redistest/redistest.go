package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one running redis-server.
type Server struct {
	Addr    string // 127.0.0.1:port
	cmd     *exec.Cmd
	dir     string
	port    int
	persist bool // AOF with fsync at every write: a restart loses nothing
	cluster bool // a Redis Cluster node
	tb      testing.TB
}

// URL is the server's address as a REDIS_URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a new client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// Start runs a fresh redis-server and registers its stop with tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartPersistent is Start with the settings under which a Redis restart
// loses nothing (appendonly yes, appendfsync always), for restart tests.
func StartPersistent(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, persist bool) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis-server not found under CI=true; run 'make deps': %v", err)
		}
		tb.Skipf("redis-server not found (install it with 'make deps'): %v", err)
	}
	s := &Server{tb: tb, dir: tb.TempDir(), persist: persist}
	// A port can be taken between our probe and redis binding it; retry a few times.
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: free port: %v", err)
		}
		if err := s.start(bin, port); err == nil {
			tb.Cleanup(s.Stop)
			return s
		} else if attempt == 4 {
			tb.Fatalf("redistest: %v", err)
		}
	}
	return nil
}

func (s *Server) start(bin string, port int) error {
	s.port = port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	aof := []string{"--appendonly", "no"}
	if s.persist {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	if s.cluster {
		aof = append(aof, clusterArgs(port)...)
	}
	s.cmd = exec.Command(bin, append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", s.dir,
		"--protected-mode", "yes",
		"--loglevel", "warning",
	}, aof...)...)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	var logTail strings.Builder
	go func() { // drains redis' output until it exits
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if logTail.Len() < 4096 {
				logTail.WriteString(sc.Text() + "\n")
			}
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on port %d did not come up", port)
}

// Stop ends the server. Tests that simulate a Redis restart call Stop and
// then Restart; Stop is idempotent.
func (s *Server) Stop() {
	s.kill()
}

func (s *Server) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_, _ = s.cmd.Process.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port after Stop.
func (s *Server) Restart() {
	s.tb.Helper()
	bin, _ := exec.LookPath("redis-server")
	if err := s.start(bin, s.port); err != nil {
		s.tb.Fatalf("redistest: restart: %v", err)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Calls is how many times the server has run the given commands (lower
// case, as INFO commandstats names them: "evalsha", "pexpire"), summed,
// those run inside scripts included.
func Calls(tb testing.TB, rdb redis.UniversalClient, cmds ...string) int {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range cmds {
			rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls=")
			if !ok {
				continue
			}
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				tb.Fatalf("commandstats line %q", line)
			}
			v, err := strconv.Atoi(rest[:end])
			if err != nil {
				tb.Fatalf("commandstats line %q: %v", line, err)
			}
			n += v
		}
	}
	return n
}
