package redistest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of real redis-server nodes on loopback.
type Cluster struct {
	Nodes []*Server
	tb    testing.TB
}

// URL is the cluster as a REDIS_URL for go-redis' ParseClusterURL.
func (c *Cluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr
	for i, n := range c.Nodes[1:] {
		if i == 0 {
			u += "?"
		} else {
			u += "&"
		}
		u += "addr=" + n.Addr
	}
	return u
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	c.tb.Cleanup(func() { cc.Close() })
	return cc
}

// BusPublishes sums, over the nodes, the Pub/Sub messages each sent the
// others over the cluster bus (CLUSTER INFO's
// cluster_stats_messages_publish_sent): a classic PUBLISH goes to every
// node, a sharded one stays in its shard.
func (c *Cluster) BusPublishes() int64 {
	c.tb.Helper()
	var n int64
	for _, node := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: node.Addr})
		info, err := cl.ClusterInfo(context.Background()).Result()
		cl.Close()
		if err != nil {
			c.tb.Fatalf("redistest: cluster info: %v", err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "cluster_stats_messages_publish_sent:"); ok {
				k, _ := strconv.ParseInt(v, 10, 64)
				n += k
			}
		}
	}
	return n
}

// StartCluster runs n masters (no replicas) with cluster mode on, joins
// them with redis-cli --cluster create and waits until every node says the
// cluster is ok.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb}
	for i := 0; i < n; i++ {
		s := &Server{tb: tb, dir: tb.TempDir(), cluster: true}
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			var port int
			if port, err = freePort(); err != nil {
				break
			}
			if err = s.start(requireBin(tb, "redis-server"), port); err == nil {
				break
			}
		}
		if err != nil {
			tb.Fatalf("redistest: cluster node: %v", err)
		}
		tb.Cleanup(s.Stop)
		c.Nodes = append(c.Nodes, s)
	}
	args := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(requireBin(tb, "redis-cli"), args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, s := range c.Nodes {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr})
		for {
			info, err := cl.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				cl.Close()
				tb.Fatalf("redistest: cluster never became ok on %s: %v %s", s.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		cl.Close()
	}
	return c
}

func requireBin(tb testing.TB, name string) string {
	tb.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not found; run 'make deps': %v", name, err)
	}
	return bin
}

// clusterArgs are a cluster node's settings.
func clusterArgs(port int) []string {
	return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes-" + strconv.Itoa(port) + ".conf",
		"--cluster-node-timeout", "2000"}
}
