package config

import (
	"net"
	"strings"
	"time"
)

// RedisPasswordEnv is the environment variable whose value, when set and
// not empty, is the Redis password (cluster.redis.password is then
// ignored), so that it can come from a Kubernetes Secret.
const RedisPasswordEnv = "ADHOCD_REDIS_PASSWORD"

// Cluster configures running as one of several replicas (docs/clustering.md):
// the directory of sessions and the bus between replicas on Redis. With no
// Redis address (and no Sentinel) the server is a single process, its
// sessions in its own memory.
type Cluster struct {
	Redis Redis `yaml:"redis"`
	// Lease is how long a replica stays in the directory without renewing
	// its lease: a replica killed without a goodbye leaves it (its users
	// announced unavailable, messages to them kept offline) within about
	// one lease; one that cannot reach Redis for a lease fences itself.
	Lease Duration `yaml:"lease"`
	// Replica names this replica in the directory; empty: the host name
	// (the pod's name on Kubernetes). A random boot epoch is added to it,
	// so that a replica restarted under the same name is a new one.
	Replica string `yaml:"replica"`
}

// Redis is where the cluster directory and bus live.
type Redis struct {
	// Addr is host:port of the Redis server; empty: no cluster (unless
	// SentinelMaster is set).
	Addr string `yaml:"addr"`
	// Password, if any; ADHOCD_REDIS_PASSWORD wins over it.
	Password string `yaml:"password"`
	// TLS connects with TLS, verifying the server's certificate against
	// the system's roots or CAFile.
	TLS    bool   `yaml:"tls"`
	CAFile string `yaml:"ca_file"`
	// SentinelMaster, when set, finds the master of that name through the
	// Sentinels of SentinelAddrs (a comma-separated list of host:port)
	// instead of Addr.
	SentinelMaster string `yaml:"sentinel_master"`
	SentinelAddrs  string `yaml:"sentinel_addrs"`
}

// DefaultClusterLease is cluster.lease's default.
const DefaultClusterLease = 20 * time.Second

// Enabled reports whether a cluster is configured.
func (c Cluster) Enabled() bool { return c.Redis.Addr != "" || c.Redis.SentinelMaster != "" }

// Sentinels returns the Sentinel addresses of SentinelAddrs.
func (r Redis) Sentinels() []string {
	var out []string
	for _, a := range strings.Split(r.SentinelAddrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validate checks the cluster section against the storage backend; bad
// collects what is wrong. A password is never quoted.
func (c *Cluster) validate(backend string, bad func(format string, args ...any)) {
	if c.Lease.D() < 3*time.Second {
		bad("cluster.lease %s: must be at least 3s (it is renewed every third of it)", c.Lease.D())
	}
	if !c.Enabled() {
		if c.Redis.SentinelAddrs != "" {
			bad("cluster.redis.sentinel_addrs is set without cluster.redis.sentinel_master")
		}
		return
	}
	if backend != BackendPostgres {
		// Replicas on files of their own would each have other accounts.
		bad("cluster.redis is set but storage.backend is %s: a cluster needs storage.backend: postgres", backend)
	}
	r := c.Redis
	switch {
	case r.SentinelMaster != "" && len(r.Sentinels()) == 0:
		bad("cluster.redis.sentinel_master is set: cluster.redis.sentinel_addrs must list the Sentinels (host:port, comma-separated)")
	case r.SentinelMaster == "":
		if _, _, err := net.SplitHostPort(r.Addr); err != nil {
			bad("cluster.redis.addr %q: want host:port", r.Addr)
		}
	}
	for _, a := range r.Sentinels() {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("cluster.redis.sentinel_addrs: %q: want host:port", a)
		}
	}
	if r.CAFile != "" && !r.TLS {
		bad("cluster.redis.ca_file is set but cluster.redis.tls is off")
	}
}
