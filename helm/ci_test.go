package helm_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// ciChecks says, for each values file of helm/adhocd/ci, what it must
// render beyond decoding strictly and giving a config.yaml adhocd loads.
// A file without an entry fails TestCIValues: each feature file is checked
// for its feature.
var ciChecks = map[string]func(t *testing.T, r rendered){
	// TestFullValues checks it value by value.
	"full-values.yaml": func(*testing.T, rendered) {},

	// Three replicas on PostgreSQL and Redis (cluster_test.go).
	"cluster-values.yaml": checkClusterValues,

	// The XEP-0363 upload service with its Ingress and volume (upload_test.go).
	"upload-values.yaml": checkUploadValues,

	// The group chat service's values and two XEP-0114 components with
	// their Secrets, Service and NetworkPolicy rule (components_test.go).
	"components-values.yaml": checkComponentsValues,

	"networkpolicy-values.yaml": func(t *testing.T, r rendered) {
		np := r.networkPolicy
		if np == nil {
			t.Fatal("no NetworkPolicy")
		}
		if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) ||
			np.Spec.PodSelector.MatchLabels["app.kubernetes.io/instance"] != "chat" {
			t.Fatalf("NetworkPolicy spec: %+v", np.Spec)
		}
		if len(np.Spec.Ingress) != 2 {
			t.Fatalf("ingress rules: %+v", np.Spec.Ingress)
		}
		clients, metrics := np.Spec.Ingress[0], np.Spec.Ingress[1]
		if len(clients.From) != 0 || !slices.Equal(policyPorts(clients), []string{"xmpp-client", "xmpp-websocket"}) {
			t.Fatalf("clients rule (from anywhere to c2s and WebSocket): %+v", clients)
		}
		// The named ports exist on the pod.
		c := r.statefulSet.Spec.Template.Spec.Containers[0]
		for _, p := range slices.Concat(policyPorts(clients), policyPorts(metrics)) {
			if containerPort(c, p) == nil {
				t.Fatalf("the NetworkPolicy names port %s, which the pod lacks", p)
			}
		}
		if !slices.Equal(policyPorts(metrics), []string{"metrics"}) || len(metrics.From) != 1 ||
			metrics.From[0].NamespaceSelector == nil || metrics.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" ||
			metrics.From[0].PodSelector == nil || len(metrics.From[0].PodSelector.MatchLabels) != 0 {
			t.Fatalf("metrics rule (only from the monitoring namespace): %+v", metrics)
		}
	},

	"existing-secret-values.yaml": func(t *testing.T, r rendered) {
		if len(r.secrets) != 0 {
			t.Fatalf("a Secret is rendered although adminBootstrap.existingSecret names one: %s", r.secrets[0].Name)
		}
		c := r.statefulSet.Spec.Template.Spec.Containers[0]
		if ref := secretRef(env(c, "ADHOCD_ADMIN_PASSWORD")); ref == nil || ref.Name != "chat-admin" || ref.Key != "admin-password" {
			t.Fatalf("the pod does not read chat-admin/admin-password: %+v", ref)
		}
		if e := env(c, "ADHOCD_ADMIN_JID"); e == nil || e.Value != "admin@chat.example.org" {
			t.Fatalf("ADHOCD_ADMIN_JID %+v, want admin@chat.example.org", e)
		}
		checkTestPod(t, r, "default", "admin@chat.example.org", "chat-admin", "admin-password")
	},

	"existing-claim-values.yaml": func(t *testing.T, r rendered) {
		sts := r.statefulSet
		if len(sts.Spec.VolumeClaimTemplates) != 0 {
			t.Fatalf("a volumeClaimTemplate beside persistence.existingClaim: %+v", sts.Spec.VolumeClaimTemplates)
		}
		v := volume(sts.Spec.Template.Spec, "data")
		if v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "adhocd-data" {
			t.Fatalf("data volume: %+v", v)
		}
	},

	"serviceaccount-off-values.yaml": func(t *testing.T, r rendered) {
		pod := r.statefulSet.Spec.Template.Spec
		if r.serviceAccount != nil || pod.ServiceAccountName != "default" {
			t.Fatalf("ServiceAccount %+v, pod's %q", r.serviceAccount, pod.ServiceAccountName)
		}
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
			t.Fatal("the pod mounts the default ServiceAccount's token")
		}
	},

	"admin-off-values.yaml": func(t *testing.T, r rendered) {
		c := r.statefulSet.Spec.Template.Spec.Containers[0]
		if len(r.secrets) != 0 || len(c.Env) != 0 || r.testPod != nil {
			t.Fatalf("secrets %d, env %+v, test pod %v", len(r.secrets), c.Env, r.testPod != nil)
		}
	},

	"extras-values.yaml": func(t *testing.T, r rendered) {
		pod := r.statefulSet.Spec.Template.Spec
		c := pod.Containers[0]
		// The chart's own variables stay first, the extra ones follow.
		var names []string
		for _, e := range c.Env {
			names = append(names, e.Name)
		}
		if !slices.Equal(names, []string{"ADHOCD_ADMIN_JID", "ADHOCD_ADMIN_PASSWORD", "GOMAXPROCS", "SHARED_TOKEN"}) {
			t.Fatalf("env: %q", names)
		}
		if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "adhocd-env" {
			t.Fatalf("envFrom: %+v", c.EnvFrom)
		}
		if v := volume(pod, "hooks"); v == nil || v.ConfigMap == nil || volume(pod, "config") == nil {
			t.Fatalf("volumes: %+v", pod.Volumes)
		}
		if m := c.VolumeMounts[len(c.VolumeMounts)-1]; m.Name != "hooks" || m.MountPath != "/etc/adhocd/hooks" {
			t.Fatalf("volume mounts: %+v", c.VolumeMounts)
		}
		if len(pod.InitContainers) != 1 || pod.InitContainers[0].Name != "restore" ||
			len(pod.Containers) != 2 || pod.Containers[0].Name != "adhocd" || pod.Containers[1].Name != "backup" {
			t.Fatalf("init containers %+v, containers %+v", pod.InitContainers, pod.Containers)
		}
		if c.LivenessProbe != nil || c.StartupProbe.PeriodSeconds != 5 || c.StartupProbe.FailureThreshold != 60 ||
			c.ReadinessProbe.TimeoutSeconds != 3 || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Fatalf("probes: startup %+v, readiness %+v, liveness %+v", c.StartupProbe, c.ReadinessProbe, c.LivenessProbe)
		}
		if c.Resources.Requests.Cpu().String() != "50m" {
			t.Fatalf("resources: %+v", c.Resources)
		}
		meta := r.statefulSet.Spec.Template.ObjectMeta
		if meta.Annotations["example.org/backup"] != "true" || meta.Annotations["checksum/config"] == "" || meta.Labels["team"] != "chat" {
			t.Fatalf("pod metadata: %+v", meta)
		}
		if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].TopologyKey != "kubernetes.io/hostname" ||
			pod.PriorityClassName != "high" {
			t.Fatalf("scheduling: %+v, %q", pod.TopologySpreadConstraints, pod.PriorityClassName)
		}
	},

	"nodeport-values.yaml": func(t *testing.T, r rendered) {
		svc := service(r, "chat-adhocd")
		if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
			servicePort(svc, "xmpp-client").NodePort != 30522 || len(svc.Spec.LoadBalancerSourceRanges) != 0 {
			t.Fatalf("c2s Service: %+v", svc.Spec)
		}
	},

	"loadbalancer-values.yaml": func(t *testing.T, r rendered) {
		svc := service(r, "chat-adhocd")
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
			!slices.Equal(svc.Spec.LoadBalancerSourceRanges, []string{"198.51.100.0/24", "2001:db8::/32"}) ||
			servicePort(svc, "xmpp-client").NodePort != 0 {
			t.Fatalf("c2s Service: %+v", svc.Spec)
		}
	},

	"names-values.yaml": func(t *testing.T, r rendered) {
		if r.statefulSet.Name != "xmpp" || service(r, "xmpp") == nil || service(r, "xmpp-headless") == nil ||
			r.statefulSet.Spec.ServiceName != "xmpp-headless" || r.configMaps["xmpp"] == nil || r.serviceAccount.Name != "xmpp" {
			t.Fatalf("names: statefulset %s, services %d", r.statefulSet.Name, len(r.services))
		}
		if l := r.statefulSet.Spec.Selector.MatchLabels["app.kubernetes.io/name"]; l != "chat-server" {
			t.Fatalf("app.kubernetes.io/name %q, want chat-server", l)
		}
		checkTestPod(t, r, "default", "admin@localhost", "xmpp-admin", "password")
	},

	"domain-values.yaml": func(t *testing.T, r rendered) {
		c := r.statefulSet.Spec.Template.Spec.Containers[0]
		if e := env(c, "ADHOCD_ADMIN_JID"); e == nil || e.Value != "admin@Chat.Example.org" {
			t.Fatalf("ADHOCD_ADMIN_JID %+v, want admin@Chat.Example.org", e)
		}
	},
}

// TestCIValues lints the chart with each values file of helm/adhocd/ci,
// renders it, decodes every manifest strictly, loads the config.yaml with
// adhocd's loader and runs the file's check.
func TestCIValues(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(chartDir(), "ci", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			check, ok := ciChecks[name]
			if !ok {
				t.Fatalf("ci/%s has no entry in ciChecks", name)
			}
			run(t, "lint", "--strict", chartDir(), "-f", f)
			r := decode(t, run(t, "template", "chat", chartDir(), "-f", f))
			name, pod := r.workload(t)
			cfg := loadConfig(t, r.configMaps[name])
			if e := env(pod.Spec.Containers[0], "ADHOCD_ADMIN_JID"); e != nil {
				// adhocd refuses a bootstrap JID of another domain.
				if _, domain, _ := strings.Cut(e.Value, "@"); !strings.EqualFold(domain, cfg.Domain) {
					t.Fatalf("ADHOCD_ADMIN_JID %s is not on %s", e.Value, cfg.Domain)
				}
			}
			check(t, r)
		})
	}
	for name := range ciChecks {
		if _, err := os.Stat(filepath.Join(chartDir(), "ci", name)); err != nil {
			t.Errorf("ciChecks names ci/%s, which is missing", name)
		}
	}
}

// policyPorts returns the named ports of a NetworkPolicy rule.
func policyPorts(rule networkingv1.NetworkPolicyIngressRule) []string {
	var ports []string
	for _, p := range rule.Ports {
		if p.Port != nil {
			ports = append(ports, p.Port.String())
		}
	}
	return ports
}

// volume returns the pod's volume called name, or nil.
func volume(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}
