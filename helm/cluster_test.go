package helm_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/adhocd/adhocd/config"
)

// checkClusterValues checks ci/cluster-values.yaml as the operator of three
// replicas would: a Deployment rather than a StatefulSet, rolled one pod at
// a time and spread over nodes, its pods reading the passwords of
// PostgreSQL and Redis from their Secrets and every file the config names
// from a mounted Secret, no password in the ConfigMap, and a drain that
// ends before the kubelet's SIGKILL.
func checkClusterValues(t *testing.T, r rendered) {
	if r.statefulSet != nil {
		t.Fatalf("a StatefulSet (%s) on storage.backend postgres", r.statefulSet.Name)
	}
	d := r.deployment
	if d == nil {
		t.Fatal("no Deployment")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Fatalf("replicas %v, want 3", d.Spec.Replicas)
	}
	s := d.Spec.Strategy
	if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil || s.RollingUpdate.MaxSurge == nil || s.RollingUpdate.MaxUnavailable == nil ||
		s.RollingUpdate.MaxSurge.String() != "1" || s.RollingUpdate.MaxUnavailable.String() != "0" {
		t.Fatalf("strategy %+v, want RollingUpdate with maxSurge 1 and maxUnavailable 0", s)
	}
	pod := d.Spec.Template
	if !matches(d.Spec.Selector.MatchLabels, pod.Labels) {
		t.Fatalf("the selector %v does not select the pods %v", d.Spec.Selector.MatchLabels, pod.Labels)
	}
	c := pod.Spec.Containers[0]

	// The passwords, from Secrets made outside the chart.
	for name, want := range map[string][2]string{
		"ADHOCD_POSTGRES_PASSWORD": {"chat-postgres", "postgres-password"},
		"ADHOCD_REDIS_PASSWORD":    {"chat-redis", "redis-password"},
		"ADHOCD_ADMIN_PASSWORD":    {"chat-admin", "password"},
	} {
		if ref := secretRef(env(c, name)); ref == nil || ref.Name != want[0] || ref.Key != want[1] {
			t.Errorf("%s from %+v, want Secret %s key %s", name, ref, want[0], want[1])
		}
	}
	if len(r.secrets) != 0 {
		t.Errorf("the chart renders a Secret (%s) although every one is named", r.secrets[0].Name)
	}

	// No password in the ConfigMap, and the config adhocd loads.
	cm := r.configMaps[d.Name]
	cfg := loadConfig(t, cm)
	var tree map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &tree); err != nil {
		t.Fatal(err)
	}
	if keys := passwordKeys(tree, ""); len(keys) != 0 {
		t.Errorf("the ConfigMap has passwords: %q", keys)
	}
	if u, err := url.Parse(cfg.Storage.Postgres.DSN); err != nil || u.User == nil || u.User.Username() != "adhocd" {
		t.Errorf("storage.postgres.dsn %q: %v", cfg.Storage.Postgres.DSN, err)
	} else if _, ok := u.User.Password(); ok {
		t.Errorf("storage.postgres.dsn holds a password")
	}
	if cfg.Cluster.Redis.Password != "" {
		t.Error("cluster.redis.password is in the ConfigMap")
	}
	if cfg.Storage.Backend != config.BackendPostgres || cfg.Storage.Postgres.MaxConns != 20 ||
		cfg.Storage.Postgres.DSN != "postgres://adhocd@db.example.org:5432/adhocd?sslmode=verify-full" {
		t.Errorf("storage: %+v", cfg.Storage)
	}
	if !cfg.Cluster.Enabled() || cfg.Cluster.Redis.Addr != "redis.example.org:6380" || !cfg.Cluster.Redis.TLS ||
		cfg.Cluster.Lease.D() != config.DefaultClusterLease || cfg.Cluster.Replica != "" {
		t.Errorf("cluster: %+v (the replica's name must be left to the pod's host name)", cfg.Cluster)
	}

	// Every file the config names comes from the Secret meant for it, so
	// that every replica serves the same certificate.
	for _, f := range []struct{ path, secret, key string }{
		{cfg.TLS.CertFile, "chat-tls", "tls.crt"},
		{cfg.TLS.KeyFile, "chat-tls", "tls.key"},
		{cfg.Cluster.Redis.CAFile, "chat-redis-ca", "ca.crt"},
		{envValue(c, "PGSSLROOTCERT"), "chat-db-ca", "ca.crt"},
	} {
		if secret, key := secretFile(pod.Spec, c, f.path); secret != f.secret || key != f.key {
			t.Errorf("%q is key %q of Secret %q in the pod, want %s of %s", f.path, key, secret, f.key, f.secret)
		}
	}

	// Nothing of the pod's own survives it: /data is an emptyDir.
	if v := mountedVolume(pod.Spec, c, cfg.Storage.Path); v == nil || v.EmptyDir == nil {
		t.Errorf("storage.path %s is on %+v, want an emptyDir", cfg.Storage.Path, v)
	}

	checkDrainFits(t, pod.Spec, cfg, 5)
	if cfg.Shutdown.Drain.D() != 35*time.Second {
		t.Errorf("shutdown.drain %s, want 35s (45 s of grace, 5 s of preStop, 5 s left)", cfg.Shutdown.Drain.D())
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want /readyz (not ready while draining or fenced)", p)
	}

	// Spread over nodes, without ever blocking a pod.
	if len(pod.Spec.TopologySpreadConstraints) != 1 {
		t.Fatalf("topologySpreadConstraints: %+v", pod.Spec.TopologySpreadConstraints)
	}
	tsc := pod.Spec.TopologySpreadConstraints[0]
	if tsc.TopologyKey != "kubernetes.io/hostname" || tsc.WhenUnsatisfiable != corev1.ScheduleAnyway || tsc.MaxSkew != 1 ||
		tsc.LabelSelector == nil || !matches(tsc.LabelSelector.MatchLabels, pod.Labels) {
		t.Errorf("topology spread %+v, want maxSkew 1 over kubernetes.io/hostname, ScheduleAnyway, selecting the pods", tsc)
	}
	if a := pod.Spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 ||
		len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("affinity %+v, want one preferred pod anti-affinity", pod.Spec.Affinity)
	} else {
		term := a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
		if term.TopologyKey != "kubernetes.io/hostname" || term.LabelSelector == nil || !matches(term.LabelSelector.MatchLabels, pod.Labels) {
			t.Errorf("pod anti-affinity term %+v", term)
		}
	}

	// The PodDisruptionBudget lets a drain evict one replica at a time.
	if p := r.pdb; p == nil || p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.String() != "1" ||
		p.Spec.Selector == nil || !matches(p.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PodDisruptionBudget %+v, want maxUnavailable 1 over the pods", r.pdb)
	}
	checkTestPod(t, r, "default", "admin@chat.example.org", "chat-admin", "password")
}

// checkDrainFits checks that the kubelet's SIGKILL, at the end of the grace
// period, comes after the preStop hook (want seconds; 0: no hook), the
// drain, and 5 s for adhocd's last closes.
func checkDrainFits(t *testing.T, pod corev1.PodSpec, cfg config.Config, preStop int64) {
	t.Helper()
	c := pod.Containers[0]
	var got int64
	if l := c.Lifecycle; l != nil && l.PreStop != nil {
		if l.PreStop.Sleep == nil || l.PreStop.Exec != nil || l.PreStop.HTTPGet != nil {
			t.Fatalf("the preStop hook %+v is not a sleep action (the image has no shell)", l.PreStop)
		}
		got = l.PreStop.Sleep.Seconds
	}
	if got != preStop {
		t.Fatalf("the preStop hook sleeps %d s, want %d", got, preStop)
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if used := time.Duration(got)*time.Second + cfg.Shutdown.Drain.D() + 5*time.Second; used > grace {
		t.Fatalf("preStop %d s + shutdown.drain %s + 5 s is over the grace period %s", got, cfg.Shutdown.Drain.D(), grace)
	}
}

// TestDrainFitsGracePeriod checks shutdown.drain as rendered: by default
// on the Deployment what the grace period leaves after the preStop hook
// and 5 s, on the StatefulSet 0; shutdown.drainSeconds when set; always
// within the grace period.
func TestDrainFitsGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name    string
		set     []string
		drain   time.Duration
		preStop int64
	}{
		{"bolt", nil, 0, 0},
		{"bolt, drain set", []string{"shutdown.drainSeconds=20"}, 20 * time.Second, 0},
		{"postgres", pg(), 35 * time.Second, 5},
		{"postgres, long grace", pg("terminationGracePeriodSeconds=120"), 110 * time.Second, 5},
		{"postgres, no preStop", pg("lifecycle.preStopSleepSeconds=0"), 40 * time.Second, 0},
		{"postgres, drain set", pg("shutdown.drainSeconds=10"), 10 * time.Second, 5},
		{"postgres, drain 0", pg("shutdown.drainSeconds=0"), 0, 5},
		{"postgres, all used", pg("terminationGracePeriodSeconds=30", "lifecycle.preStopSleepSeconds=10", "shutdown.drainSeconds=15"), 15 * time.Second, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decode(t, run(t, setArgs(tc.set)...))
			name, pod := r.workload(t)
			cfg := loadConfig(t, r.configMaps[name])
			if cfg.Shutdown.Drain.D() != tc.drain {
				t.Fatalf("shutdown.drain %s, want %s", cfg.Shutdown.Drain.D(), tc.drain)
			}
			checkDrainFits(t, pod.Spec, cfg, tc.preStop)
		})
	}
}

// TestClusterRefusals checks the values that would give replicas with data
// or certificates of their own, a password in the ConfigMap, or a drain
// cut short by SIGKILL: each stops helm with what to change.
func TestClusterRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"bolt, two replicas", setArgs([]string{"replicaCount=2"}),
			[]string{"at '/replicaCount': maximum: got 2, want 1"}},
		// What the schema cannot say, the template does.
		{"bolt, two replicas, no schema", append(setArgs([]string{"replicaCount=2"}), "--skip-schema-validation"),
			[]string{"replicaCount 2 needs storage.backend: postgres: bolt is a file on one pod's volume"}},
		{"postgres, three replicas, no redis", setArgs(pg("replicaCount=3", "tls.existingSecret=chat-tls")),
			[]string{"replicaCount 3 on storage.backend postgres needs redis.addr (or redis.sentinel.master)"}},
		{"postgres, three replicas, no certificate", setArgs(pg("replicaCount=3", "redis.addr=redis:6379")),
			[]string{"replicaCount 3 needs tls.existingSecret: without it each pod generates a self-signed certificate of its own"}},
		{"postgres without dsn", setArgs([]string{"storage.backend=postgres"}),
			[]string{"storage.backend postgres needs postgres.dsn"}},
		{"password in the dsn's user", setArgs([]string{"storage.backend=postgres", "postgres.dsn=postgres://adhocd:s3cret@db/adhocd"}),
			[]string{"postgres.dsn holds a password"}},
		{"password in the dsn's query", setArgs([]string{"storage.backend=postgres", "postgres.dsn=postgres://adhocd@db/adhocd?password=s3cret"}),
			[]string{"postgres.dsn holds a password"}},
		{"password in a keyword dsn", setArgs([]string{"storage.backend=postgres", "postgres.dsn=host=db user=adhocd password=s3cret"}),
			[]string{"postgres.dsn holds a password"}},
		{"dsn on bolt", setArgs([]string{"postgres.dsn=postgres://adhocd@db/adhocd"}),
			[]string{"postgres.dsn is set but storage.backend is bolt"}},
		{"redis on bolt", setArgs([]string{"redis.addr=redis:6379"}),
			[]string{"storage.backend is bolt: a cluster needs storage.backend: postgres"}},
		{"redis addr without port", setArgs(pg("redis.addr=redis")), []string{"/redis/addr"}},
		{"sentinel without sentinels", setArgs(pg("redis.sentinel.master=adhocd")),
			[]string{"redis.sentinel.addrs must list the Sentinels"}},
		{"sentinel and addr", setArgs(pg("redis.sentinel.master=adhocd", "redis.sentinel.addrs={s1:26379}", "redis.addr=redis:6379")),
			[]string{"redis.addr and redis.sentinel.master are both set"}},
		{"redis CA without TLS", setArgs(pg("redis.addr=redis:6379", "redis.caSecret=redis-ca")),
			[]string{"redis.caSecret is set but redis.tls is false"}},
		{"redis password without redis", setArgs(pg("redis.existingSecret=chat-redis")),
			[]string{"redis.existingSecret is set without redis.addr"}},
		{"claim on postgres", setArgs(pg("persistence.existingClaim=adhocd-data")),
			[]string{"persistence.existingClaim is for storage.backend bolt"}},
		{"drain over the grace period", setArgs(pg("shutdown.drainSeconds=36")),
			[]string{"shutdown.drainSeconds 36 and the preStop hook's 5 s do not fit in terminationGracePeriodSeconds 45", "at most 35"}},
		{"drain over the StatefulSet's grace period", setArgs([]string{"shutdown.drainSeconds=41"}),
			[]string{"shutdown.drainSeconds 41 and the preStop hook's 0 s do not fit in terminationGracePeriodSeconds 45", "at most 40"}},
		{"preStop over the grace period", setArgs(pg("lifecycle.preStopSleepSeconds=41")),
			[]string{"lifecycle.preStopSleepSeconds 41 leaves no time to drain connections in terminationGracePeriodSeconds 45"}},
		{"negative drain", setArgs(pg("shutdown.drainSeconds=-1")), []string{"/shutdown/drainSeconds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runHelm(t, tc.args...)
			if err == nil {
				t.Fatalf("accepted:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("the error does not say %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestPostgresOneReplica checks storage.backend postgres without Redis: a
// Deployment of one pod and no cluster in the config, no password
// variable without a Secret, and adhocd's self-signed certificate (which
// helm test cannot check) on the pod's emptyDir.
func TestPostgresOneReplica(t *testing.T) {
	r := decode(t, run(t, setArgs(pg())...))
	name, pod := r.workload(t)
	if r.deployment == nil || *r.deployment.Spec.Replicas != 1 {
		t.Fatalf("want a Deployment of 1 replica: %+v", r.deployment)
	}
	c := pod.Spec.Containers[0]
	cfg := loadConfig(t, r.configMaps[name])
	if cfg.Cluster.Enabled() || cfg.Storage.Backend != config.BackendPostgres || cfg.TLS.CertFile != "" {
		t.Fatalf("cluster %+v, storage %+v, tls %+v", cfg.Cluster, cfg.Storage, cfg.TLS)
	}
	for _, v := range []string{"ADHOCD_POSTGRES_PASSWORD", "ADHOCD_REDIS_PASSWORD", "PGSSLROOTCERT"} {
		if e := env(c, v); e != nil {
			t.Errorf("%s is set: %+v", v, e)
		}
	}
	if v := mountedVolume(pod.Spec, c, cfg.Storage.Path); v == nil || v.EmptyDir == nil {
		t.Errorf("storage.path is on %+v, want an emptyDir", v)
	}
	checkTestPod(t, r, "default", "admin@localhost", "chat-adhocd-admin", "password")
}

// TestPostgresScheduling checks that the operator's own affinity and
// topologySpreadConstraints are kept on the Deployment: a node affinity
// gets the default pod anti-affinity beside it, a pod anti-affinity or
// spread constraints of their own replace the defaults.
func TestPostgresScheduling(t *testing.T) {
	nodeAffinity := "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]"
	r := decode(t, run(t, setArgs(pg(nodeAffinity+".key=pool", nodeAffinity+".operator=In", nodeAffinity+".values={chat}"))...))
	_, pod := r.workload(t)
	if a := pod.Spec.Affinity; a == nil || a.NodeAffinity == nil || a.PodAntiAffinity == nil ||
		len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Fatalf("affinity %+v: want the node affinity and the default pod anti-affinity", pod.Spec.Affinity)
	}

	anti := "affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
	r = decode(t, run(t, setArgs(pg(anti+".topologyKey=topology.kubernetes.io/zone", anti+".labelSelector.matchLabels.app\\.kubernetes\\.io/name=adhocd",
		"topologySpreadConstraints[0].maxSkew=2", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
		"topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule"))...))
	_, pod = r.workload(t)
	if a := pod.Spec.Affinity.PodAntiAffinity; len(a.PreferredDuringSchedulingIgnoredDuringExecution) != 0 ||
		len(a.RequiredDuringSchedulingIgnoredDuringExecution) != 1 || a.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "topology.kubernetes.io/zone" {
		t.Fatalf("pod anti-affinity %+v: want the operator's alone", a)
	}
	if tsc := pod.Spec.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].MaxSkew != 2 || tsc[0].WhenUnsatisfiable != corev1.DoNotSchedule {
		t.Fatalf("topologySpreadConstraints %+v: want the operator's alone", tsc)
	}
}

// TestSentinel checks Redis through Sentinel: the master's name and the
// comma-separated Sentinels reach cluster.redis, with no addr.
func TestSentinel(t *testing.T) {
	r := decode(t, run(t, setArgs(pg("replicaCount=2", "tls.existingSecret=chat-tls", "redis.sentinel.master=adhocd",
		"redis.sentinel.addrs={sentinel-0.redis:26379,sentinel-1.redis:26379}"))...))
	name, _ := r.workload(t)
	cfg := loadConfig(t, r.configMaps[name])
	red := cfg.Cluster.Redis
	if !cfg.Cluster.Enabled() || red.Addr != "" || red.SentinelMaster != "adhocd" ||
		!slices.Equal(red.Sentinels(), []string{"sentinel-0.redis:26379", "sentinel-1.redis:26379"}) {
		t.Fatalf("cluster.redis: %+v", red)
	}
	if *r.deployment.Spec.Replicas != 2 {
		t.Fatalf("replicas %d", *r.deployment.Spec.Replicas)
	}
}

// pg returns --set values for storage.backend postgres with a DSN, then more.
func pg(more ...string) []string {
	return append([]string{"storage.backend=postgres", "postgres.dsn=postgres://adhocd@db.example.org/adhocd"}, more...)
}

// setArgs returns the helm template command line of release chat with one
// --set per value.
func setArgs(values []string) []string {
	args := []string{"template", "chat", chartDir()}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return args
}

// passwordKeys returns the dotted keys under prefix of tree whose name
// has "password" in it.
func passwordKeys(tree map[string]any, prefix string) []string {
	var out []string
	for k, v := range tree {
		if strings.Contains(strings.ToLower(k), "password") {
			out = append(out, prefix+k)
		}
		if sub, ok := v.(map[string]any); ok {
			out = append(out, passwordKeys(sub, prefix+k+".")...)
		}
	}
	return out
}

// matches reports whether every label of selector is among labels.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// envValue returns the value of c's variable called name, or "".
func envValue(c corev1.Container, name string) string {
	if e := env(c, name); e != nil {
		return e.Value
	}
	return ""
}

// mountedVolume returns the volume of pod that c mounts at path or at a
// folder above it, or nil.
func mountedVolume(pod corev1.PodSpec, c corev1.Container, path string) *corev1.Volume {
	v, _ := mountOf(pod, c, path)
	return v
}

// secretFile returns the Secret and the key that the file at path comes
// from in c, or empty strings when no Secret volume holds it.
func secretFile(pod corev1.PodSpec, c corev1.Container, path string) (secret, key string) {
	v, rel := mountOf(pod, c, path)
	if v == nil || v.Secret == nil || rel == "" {
		return "", ""
	}
	if len(v.Secret.Items) == 0 {
		return v.Secret.SecretName, rel
	}
	for _, it := range v.Secret.Items {
		if it.Path == rel {
			return v.Secret.SecretName, it.Key
		}
	}
	return v.Secret.SecretName, ""
}

// mountOf returns the volume c mounts at path or above it, and path
// inside that volume.
func mountOf(pod corev1.PodSpec, c corev1.Container, path string) (*corev1.Volume, string) {
	if path == "" {
		return nil, ""
	}
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/"))
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		if m.SubPath != "" {
			rel = strings.TrimPrefix(m.SubPath+rel, "/")
		}
		return volume(pod, m.Name), strings.TrimPrefix(rel, "/")
	}
	return nil, ""
}
