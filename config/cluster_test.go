package config_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
)

// TestClusterDefaults: no cluster unless cluster.redis names one (the
// default and the shipped config.yaml are a single process), with a lease
// of 20 s.
func TestClusterDefaults(t *testing.T) {
	def := config.Default()
	if def.Cluster.Enabled() {
		t.Fatalf("the default configuration is a cluster: %+v", def.Cluster)
	}
	if def.Cluster.Lease.D() != 20*time.Second || config.DefaultClusterLease != 20*time.Second {
		t.Fatalf("default cluster.lease %s (DefaultClusterLease %s), want 20s", def.Cluster.Lease.D(), config.DefaultClusterLease)
	}
	shipped, err := config.Load(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if shipped.Cluster != def.Cluster {
		t.Fatalf("config.yaml's cluster section disagrees with Default():\n%+v\n%+v", shipped.Cluster, def.Cluster)
	}
	// A cluster section that sets only the address keeps the default lease.
	cfg, err := config.Parse([]byte("storage: {backend: postgres, postgres: {dsn: 'host=db'}}\ncluster: {redis: {addr: 'redis:6379'}}"))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Cluster.Enabled() || cfg.Cluster.Lease.D() != config.DefaultClusterLease || cfg.Cluster.Replica != "" {
		t.Fatalf("cluster with an address alone: %+v", cfg.Cluster)
	}
}

// TestClusterParse: every key of the cluster section, and Sentinel
// addresses read from their comma-separated list.
func TestClusterParse(t *testing.T) {
	cfg, err := config.Parse([]byte(`
storage:
  backend: postgres
  postgres: {dsn: 'postgres://adhocd@db/adhocd'}
cluster:
  lease: 3s
  replica: pod-1
  redis:
    password: s3cr3t
    tls: true
    ca_file: /etc/adhocd/redis-ca.pem
    sentinel_master: mymaster
    sentinel_addrs: " sentinel-0:26379, sentinel-1:26379 ,,sentinel-2:26379"
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if !c.Enabled() || c.Lease.D() != 3*time.Second || c.Replica != "pod-1" || c.Redis.Addr != "" || c.Redis.Password != "s3cr3t" ||
		!c.Redis.TLS || c.Redis.CAFile != "/etc/adhocd/redis-ca.pem" || c.Redis.SentinelMaster != "mymaster" {
		t.Fatalf("cluster %+v", c)
	}
	if got, want := c.Redis.Sentinels(), []string{"sentinel-0:26379", "sentinel-1:26379", "sentinel-2:26379"}; !slices.Equal(got, want) {
		t.Fatalf("Sentinels() = %q, want %q", got, want)
	}
	if got := (config.Redis{}).Sentinels(); len(got) != 0 {
		t.Fatalf("Sentinels() of no list = %q", got)
	}
}

// TestClusterValidate: what the cluster section refuses, each with the
// message that names the key to fix.
func TestClusterValidate(t *testing.T) {
	const pg = "storage: {backend: postgres, postgres: {dsn: 'host=db'}}\n"
	for _, tc := range []struct{ yaml, want string }{
		// Replicas on files of their own would each have other accounts.
		{"cluster: {redis: {addr: 'redis:6379'}}",
			"cluster.redis is set but storage.backend is bolt: a cluster needs storage.backend: postgres"},
		{"storage: {backend: bolt}\ncluster: {redis: {sentinel_master: m, sentinel_addrs: 's:26379'}}",
			"cluster.redis is set but storage.backend is bolt"},
		// Renewed every third of the lease: under 3 s is refused, with or
		// without a cluster.
		{pg + "cluster: {lease: 2s, redis: {addr: 'redis:6379'}}", "cluster.lease 2s: must be at least 3s (it is renewed every third of it)"},
		{pg + "cluster: {lease: 2999ms, redis: {addr: 'redis:6379'}}", "cluster.lease 2.999s: must be at least 3s"},
		{"cluster: {lease: 0s}", "cluster.lease 0s: must be at least 3s"},
		{pg + "cluster: {redis: {sentinel_master: mymaster}}",
			"cluster.redis.sentinel_master is set: cluster.redis.sentinel_addrs must list the Sentinels (host:port, comma-separated)"},
		{pg + "cluster: {redis: {sentinel_master: mymaster, sentinel_addrs: ' , '}}", "cluster.redis.sentinel_addrs must list the Sentinels"},
		{"cluster: {redis: {sentinel_addrs: 'sentinel-0:26379'}}", "cluster.redis.sentinel_addrs is set without cluster.redis.sentinel_master"},
		{pg + "cluster: {redis: {sentinel_master: m, sentinel_addrs: 'sentinel-0:26379,sentinel-1'}}",
			`cluster.redis.sentinel_addrs: "sentinel-1": want host:port`},
		{pg + "cluster: {redis: {addr: 'redis', tls: true}}", `cluster.redis.addr "redis": want host:port`},
		{pg + "cluster: {redis: {addr: 'redis:6379', ca_file: /etc/ca.pem}}", "cluster.redis.ca_file is set but cluster.redis.tls is off"},
		{pg + "cluster: {redis: {addr: 'redis:6379', sentinel: x}}", "sentinel"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error mentioning %q, got %v", tc.yaml, tc.want, err)
		}
	}
	for _, ok := range []string{
		pg + "cluster: {lease: 3s, redis: {addr: 'redis:6379'}}",
		pg + "cluster: {redis: {addr: '[::1]:6379', tls: true, ca_file: /etc/ca.pem}}",
		pg + "cluster: {redis: {sentinel_master: m, sentinel_addrs: 'sentinel-0:26379'}}",
		// No cluster: a CA file without TLS configures nothing and is
		// not checked.
		"cluster: {redis: {ca_file: /etc/ca.pem}}",
	} {
		if _, err := config.Parse([]byte(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

// TestClusterPasswordNeverQuoted: an error about the cluster section does
// not show the Redis password.
func TestClusterPasswordNeverQuoted(t *testing.T) {
	for _, y := range []string{
		"cluster: {redis: {addr: 'redis', password: s3cr3t}}",
		"cluster: {lease: 1s, redis: {sentinel_master: m, password: s3cr3t}}",
	} {
		_, err := config.Parse([]byte(y))
		if err == nil {
			t.Errorf("%q was accepted", y)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error quotes the password: %v", err)
		}
	}
}
