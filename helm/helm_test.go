// Package helm_test checks the Helm chart in helm/adhocd against the
// Kubernetes API types and against adhocd's own configuration loader, with
// the helm binary CI builds from the Go module proxy ($HELM, else helm on
// PATH).
package helm_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/adhocd/adhocd/config"
)

func helm(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	if h, err := exec.LookPath("helm"); err == nil {
		return h
	}
	if os.Getenv("CI") != "" {
		t.Fatal("helm is not installed (.ci/run builds it)")
	}
	t.Skip("helm is not installed; .ci/run builds it with go install")
	return ""
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// runHelm runs helm with a deadline and returns its standard output, its
// standard error and how it ended.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if len(args) > 0 && args[0] == "template" {
		args = append(slices.Clip(args), "--kube-version", kubeVersion)
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, helm(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// kubeVersion is the Kubernetes version helm template renders for: the
// oldest the chart's kubeVersion allows (the sleep action of the
// Deployment's preStop hook). A helm built with go install, as CI's is,
// otherwise assumes 1.20 and refuses the chart.
const kubeVersion = "1.30.0"

// strict decodes YAML into v, refusing unknown fields.
func strict(doc []byte, v any) error { return yaml.UnmarshalStrict(doc, v) }

type rendered struct {
	statefulSet    *appsv1.StatefulSet // storage.backend bolt
	deployment     *appsv1.Deployment  // storage.backend postgres
	services       []*corev1.Service
	configMaps     map[string]*corev1.ConfigMap
	secrets        []*corev1.Secret
	serviceAccount *corev1.ServiceAccount
	networkPolicy  *networkingv1.NetworkPolicy
	testPod        *corev1.Pod // the helm test hook
	pdb            *policyv1.PodDisruptionBudget
	ingress        *networkingv1.Ingress     // the last one rendered
	ingresses      []*networkingv1.Ingress   // all, in order
	other          map[string]map[string]any // kind → object (CRDs)
}

// decode splits helm template's output and decodes every document into its
// Kubernetes type, strictly.
func decode(t *testing.T, out string) rendered {
	t.Helper()
	r := rendered{configMaps: map[string]*corev1.ConfigMap{}, other: map[string]map[string]any{}}
	for _, doc := range strings.Split(out, "\n---") {
		doc = strings.TrimSpace(doc)
		if doc == "" || strings.Trim(doc, "-\n ") == "" {
			continue
		}
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || meta.Kind == "" {
			if strings.HasPrefix(doc, "#") && !strings.Contains(doc, "\nkind:") {
				continue // a comment-only document
			}
			t.Fatalf("document without kind (%v):\n%s", err, doc)
		}
		var err error
		switch meta.Kind {
		case "StatefulSet":
			r.statefulSet = &appsv1.StatefulSet{}
			err = strict([]byte(doc), r.statefulSet)
		case "Deployment":
			r.deployment = &appsv1.Deployment{}
			err = strict([]byte(doc), r.deployment)
		case "Service":
			s := &corev1.Service{}
			err = strict([]byte(doc), s)
			r.services = append(r.services, s)
		case "ConfigMap":
			c := &corev1.ConfigMap{}
			err = strict([]byte(doc), c)
			r.configMaps[c.Name] = c
		case "Secret":
			s := &corev1.Secret{}
			err = strict([]byte(doc), s)
			r.secrets = append(r.secrets, s)
		case "ServiceAccount":
			r.serviceAccount = &corev1.ServiceAccount{}
			err = strict([]byte(doc), r.serviceAccount)
		case "NetworkPolicy":
			r.networkPolicy = &networkingv1.NetworkPolicy{}
			err = strict([]byte(doc), r.networkPolicy)
		case "Pod":
			r.testPod = &corev1.Pod{}
			err = strict([]byte(doc), r.testPod)
		case "PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			err = strict([]byte(doc), r.pdb)
		case "Ingress":
			r.ingress = &networkingv1.Ingress{}
			err = strict([]byte(doc), r.ingress)
			r.ingresses = append(r.ingresses, r.ingress)
		case "ServiceMonitor":
			m := map[string]any{}
			err = yaml.Unmarshal([]byte(doc), &m)
			r.other[meta.Kind] = m
		default:
			err = fmt.Errorf("unexpected kind %s", meta.Kind)
		}
		if err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", meta.Kind, err, doc)
		}
	}
	return r
}

// workload returns the name and the pod template of adhocd's StatefulSet or
// Deployment, failing the test unless exactly one was rendered.
func (r rendered) workload(t *testing.T) (string, corev1.PodTemplateSpec) {
	t.Helper()
	switch {
	case r.statefulSet != nil && r.deployment != nil:
		t.Fatalf("both a StatefulSet (%s) and a Deployment (%s)", r.statefulSet.Name, r.deployment.Name)
	case r.statefulSet != nil:
		return r.statefulSet.Name, r.statefulSet.Spec.Template
	case r.deployment != nil:
		return r.deployment.Name, r.deployment.Spec.Template
	}
	t.Fatal("no StatefulSet or Deployment")
	return "", corev1.PodTemplateSpec{}
}

func chartDir() string { return filepath.Join("adhocd") }

// TestLint lints the chart with its defaults; TestCIValues lints it with
// each ci/ values file.
func TestLint(t *testing.T) {
	run(t, "lint", "--strict", chartDir())
}

// TestDefaultValues renders the chart as installed without values and checks
// the manifests and the config.yaml adhocd will load.
func TestDefaultValues(t *testing.T) {
	r := decode(t, run(t, "template", "chat", chartDir(), "--namespace", "xmpp"))
	sts := r.statefulSet
	if sts == nil || *sts.Spec.Replicas != 1 || len(sts.Spec.VolumeClaimTemplates) != 1 || r.deployment != nil {
		t.Fatalf("statefulset: %+v, deployment %v", sts, r.deployment != nil)
	}
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.StartupProbe == nil {
		t.Fatal("probes are not on /readyz, /healthz")
	}
	if !*c.SecurityContext.ReadOnlyRootFilesystem || !*pod.SecurityContext.RunAsNonRoot {
		t.Fatal("not read-only root and non-root")
	}
	if *pod.TerminationGracePeriodSeconds <= 20 {
		t.Fatalf("grace period %d is not longer than adhocd's 20 s shutdown", *pod.TerminationGracePeriodSeconds)
	}
	if len(r.services) != 3 || r.pdb == nil || len(r.secrets) != 1 || r.other["ServiceMonitor"] != nil || r.networkPolicy != nil {
		t.Fatalf("services %d, pdb %v, secrets %d, networkpolicy %v", len(r.services), r.pdb != nil, len(r.secrets), r.networkPolicy != nil)
	}
	secret := r.secrets[0]
	if pw := secret.Data["password"]; len(pw) < 16 {
		t.Fatalf("generated admin password %q", pw)
	}
	// Kept on uninstall: the account on the volume keeps its password.
	if secret.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Fatalf("the admin Secret is not kept: %v", secret.Annotations)
	}
	if e := env(c, "ADHOCD_ADMIN_JID"); e == nil || e.Value != "admin@localhost" {
		t.Fatalf("ADHOCD_ADMIN_JID: %+v", e)
	}
	if ref := secretRef(env(c, "ADHOCD_ADMIN_PASSWORD")); ref == nil || ref.Name != secret.Name || ref.Key != "password" {
		t.Fatalf("ADHOCD_ADMIN_PASSWORD does not come from %s: %+v", secret.Name, ref)
	}
	sa := r.serviceAccount
	if sa == nil || sa.Name != "chat-adhocd" || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Fatalf("ServiceAccount: %+v", sa)
	}
	if pod.ServiceAccountName != sa.Name || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Fatalf("pod's ServiceAccount %q, automount %v", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	if c.StartupProbe.HTTPGet.Port.StrVal != "metrics" || c.StartupProbe.FailureThreshold != 30 || c.ReadinessProbe.PeriodSeconds != 5 || c.LivenessProbe.PeriodSeconds != 10 {
		t.Fatalf("probe defaults: startup %+v, readiness %+v, liveness %+v", c.StartupProbe, c.ReadinessProbe, c.LivenessProbe)
	}
	checkTestPod(t, r, "xmpp", "admin@localhost", secret.Name, "password")
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	if cfg.Domain != "localhost" || cfg.Storage.Path != "/data" || !cfg.Adhoc.Persist || cfg.Metrics.Listen != ":9090" {
		t.Fatalf("rendered config: %+v", cfg)
	}
	// bolt, one process: no cluster, every connection closed at once, no preStop hook.
	if cfg.Storage.Backend != config.BackendBolt || cfg.Cluster.Enabled() || cfg.Shutdown.Drain != 0 || c.Lifecycle != nil {
		t.Fatalf("storage %+v, cluster %+v, shutdown %+v, lifecycle %+v", cfg.Storage, cfg.Cluster, cfg.Shutdown, c.Lifecycle)
	}
	def := config.Default()
	if cfg.Limits != def.Limits || cfg.Admin.IdleAfter != def.Admin.IdleAfter {
		t.Fatalf("chart defaults differ from adhocd's: %+v vs %+v", cfg.Limits, def.Limits)
	}
	if !cfg.C2S.ChannelBinding {
		t.Fatal("channel binding (SCRAM-*-PLUS) is off by default")
	}
	ws := cfg.WebSocket
	if ws.Listen != "" || ws.Path != def.WebSocket.Path || ws.TLS || len(ws.AllowedOrigins) != 0 || ws.PublicURL != "" {
		t.Fatalf("WebSocket is not off with adhocd's defaults: %+v", ws)
	}
	if p := containerPort(c, "xmpp-websocket"); p != nil {
		t.Fatalf("the pod exposes a WebSocket port by default: %+v", p)
	}
	for _, svc := range r.services {
		if p := servicePort(svc, "xmpp-websocket"); p != nil {
			t.Fatalf("Service %s has a WebSocket port by default: %+v", svc.Name, p)
		}
	}
	checkDirectTLS(t, r, cfg, 0, 0)
	if r.ingress != nil {
		t.Fatalf("an Ingress is rendered by default: %s", r.ingress.Name)
	}
	if cfg.S2S.Enabled() {
		t.Fatalf("federation is on by default: s2s.listen %q", cfg.S2S.Listen)
	}
}

// TestFullValues sets every value and checks that each reached its place.
func TestFullValues(t *testing.T) {
	r := decode(t, run(t, "template", "chat", chartDir(), "-f", filepath.Join(chartDir(), "ci", "full-values.yaml")))
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	if cfg.Domain != "chat.example.org" || cfg.C2S.Listen != ":5223" || cfg.TLS.CertFile != "/etc/adhocd/tls/tls.crt" ||
		cfg.Limits.MaxStanzaBytes != 131072 || cfg.Limits.IdleTimeout.D() != 30*time.Minute || cfg.OTel.Exporter != "otlp" ||
		cfg.Adhoc.MaxSessions != 50000 || cfg.Admin.MOTD != "Welcome to chat.example.org" || cfg.Storage.SCRAMIterations != 10000 || cfg.Limits.MaxOfflineMessages != 50 || cfg.Limits.MaxOutboundBytes != 524288 ||
		len(cfg.Admins) != 2 || cfg.Log.Format != "text" {
		t.Fatalf("rendered config: %+v", cfg)
	}
	pod := r.statefulSet.Spec.Template.Spec
	if pod.Containers[0].Image != "registry.example/adhocd:9.9.9" || len(pod.Tolerations) != 1 || pod.Affinity == nil {
		t.Fatal("pod settings not rendered")
	}
	if len(r.secrets) != 0 {
		t.Fatal("a Secret was made although adminBootstrap.existingSecret names one")
	}
	c := pod.Containers[0]
	if ref := secretRef(env(c, "ADHOCD_ADMIN_PASSWORD")); ref == nil || ref.Name != "admin-password" || ref.Key != "password" {
		t.Fatalf("admin password env: %+v", c.Env)
	}
	if e := env(c, "ADHOCD_ADMIN_JID"); e == nil || e.Value != "boss@chat.example.org" {
		t.Fatalf("ADHOCD_ADMIN_JID: %+v", e)
	}
	checkTestPod(t, r, "default", "boss@chat.example.org", "admin-password", "password")
	if r.serviceAccount == nil || r.serviceAccount.Name != "chat-xmpp" || r.serviceAccount.Annotations["example.org/role"] != "chat" || pod.ServiceAccountName != "chat-xmpp" {
		t.Fatalf("ServiceAccount %+v, pod's %q", r.serviceAccount, pod.ServiceAccountName)
	}
	svc := service(r, "chat-adhocd")
	if svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		!slices.Equal(svc.Spec.LoadBalancerSourceRanges, []string{"203.0.113.0/24", "2001:db8::/32"}) ||
		servicePort(svc, "xmpp-client").NodePort != 30522 {
		t.Fatalf("c2s Service: %+v", svc.Spec)
	}
	if env(c, "GOMEMLIMIT") == nil || len(c.EnvFrom) != 1 || len(pod.InitContainers) != 1 || len(pod.Containers) != 2 ||
		pod.PriorityClassName != "chat-critical" || len(pod.TopologySpreadConstraints) != 1 {
		t.Fatalf("extras not rendered: %+v", pod)
	}
	if p := c.ReadinessProbe; p.SuccessThreshold != 2 || p.TimeoutSeconds != 2 || p.PeriodSeconds != 7 || c.StartupProbe.InitialDelaySeconds != 1 || c.LivenessProbe.FailureThreshold != 6 {
		t.Fatalf("probes: %+v %+v %+v", c.StartupProbe, c.ReadinessProbe, c.LivenessProbe)
	}
	if np := r.networkPolicy; np == nil || len(np.Spec.Ingress) != 2 || len(np.Spec.Ingress[0].From) != 3 {
		t.Fatalf("NetworkPolicy: %+v", r.networkPolicy)
	}
	if args := r.testPod.Spec.Containers[0].Args; !slices.Contains(args, "1m") {
		t.Fatalf("tests.timeout not in the test pod's args %q", args)
	}
	if r.other["ServiceMonitor"] == nil || r.configMaps["chat-adhocd-dashboard"] == nil {
		t.Fatal("ServiceMonitor or dashboard ConfigMap missing")
	}
	if !strings.Contains(r.configMaps["chat-adhocd-dashboard"].Data["adhocd.json"], "adhocd_command_executions_total") {
		t.Fatal("the dashboard ConfigMap lacks the dashboard")
	}
	if cfg.C2S.ChannelBinding {
		t.Fatal("c2s.channelBinding: false did not reach c2s.channel_binding")
	}
	checkWebSocket(t, r, cfg)
	checkDirectTLS(t, r, cfg, 5224, 30523)
	if np := r.networkPolicy; !slices.Equal(policyPorts(np.Spec.Ingress[0]), []string{"xmpp-client", "xmpps-client", "xmpp-websocket"}) {
		t.Fatalf("NetworkPolicy client ports: %q", policyPorts(np.Spec.Ingress[0]))
	}
	l := cfg.Limits
	want := config.Limits{
		MaxBlocklistItems: 200,
		PEP:               config.PEPLimits{MaxNodes: 64, MaxItems: 100, MaxItemBytes: 65536, MaxAccountBytes: 8 << 20},
		SM:                config.SMLimits{ResumeTimeout: config.Duration(2 * time.Minute), MaxUnacked: 500},
		CSI:               config.CSILimits{MaxHeld: 250},
		MAM:               config.MAMLimits{Retention: config.Duration(720 * time.Hour), MaxMessages: 10000, MaxPage: 100},
		VCard:             config.VCardLimits{MaxBytes: 65536},
		Private:           config.PrivateLimits{MaxFragmentBytes: 65536, MaxBytes: 512 << 10},
	}
	if l.MaxBlocklistItems != want.MaxBlocklistItems || l.PEP != want.PEP || l.SM != want.SM || l.CSI != want.CSI ||
		l.MAM != want.MAM || l.VCard != want.VCard || l.Private != want.Private {
		t.Fatalf("rendered limits: blocklist %d, pep %+v, sm %+v, csi %+v, mam %+v, vcard %+v, private %+v",
			l.MaxBlocklistItems, l.PEP, l.SM, l.CSI, l.MAM, l.VCard, l.Private)
	}
}

// checkDirectTLS checks the XEP-0368 listener: with port 0 it is off (no
// c2s.direct_tls_listen and no xmpps-client port anywhere); else adhocd
// listens on :port, the pod exposes that port as xmpps-client, and the c2s
// and headless Services route it (the c2s one on nodePort, 0: any).
func checkDirectTLS(t *testing.T, r rendered, cfg config.Config, port, nodePort int32) {
	t.Helper()
	name, pod := r.workload(t)
	c := pod.Spec.Containers[0]
	if port == 0 {
		if cfg.C2S.DirectTLSListen != "" {
			t.Fatalf("c2s.direct_tls_listen %q, want none", cfg.C2S.DirectTLSListen)
		}
		if p := containerPort(c, "xmpps-client"); p != nil {
			t.Fatalf("the pod exposes a direct TLS port: %+v", p)
		}
		for _, svc := range r.services {
			if p := servicePort(svc, "xmpps-client"); p != nil {
				t.Fatalf("Service %s has a direct TLS port: %+v", svc.Name, p)
			}
		}
		return
	}
	if want := fmt.Sprintf(":%d", port); cfg.C2S.DirectTLSListen != want {
		t.Fatalf("c2s.direct_tls_listen %q, want %q", cfg.C2S.DirectTLSListen, want)
	}
	cp := containerPort(c, "xmpps-client")
	if cp == nil || cp.ContainerPort != port || cp.Protocol != corev1.ProtocolTCP {
		t.Fatalf("container port xmpps-client %+v, adhocd listens on %s", cp, cfg.C2S.DirectTLSListen)
	}
	sp := servicePort(service(r, name), "xmpps-client")
	if sp == nil || sp.Port != port || sp.TargetPort.StrVal != cp.Name || sp.NodePort != nodePort {
		t.Fatalf("c2s Service port xmpps-client: %+v", sp)
	}
	if hp := servicePort(service(r, name+"-headless"), "xmpps-client"); hp == nil || hp.Port != port || hp.TargetPort.StrVal != cp.Name {
		t.Fatalf("headless Service port xmpps-client: %+v", hp)
	}
}

// TestDirectTLS checks c2s.directTLS beside the defaults of the other
// values: off, on at its default port, and on another port with a node port.
func TestDirectTLS(t *testing.T) {
	for _, tc := range []struct {
		name           string
		set            string
		port, nodePort int32
	}{
		{"off", "c2s.directTLS.enabled=false", 0, 0},
		{"on", "c2s.directTLS.enabled=true", 5223, 0},
		{"node port", "c2s.directTLS.enabled=true,c2s.directTLS.port=5270,c2s.directTLS.nodePort=30523,c2s.service.type=NodePort", 5270, 30523},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decode(t, run(t, "template", "chat", chartDir(), "--set", tc.set))
			cfg := loadConfig(t, r.configMaps["chat-adhocd"])
			checkDirectTLS(t, r, cfg, tc.port, tc.nodePort)
			if cfg.C2S.Listen != ":5222" {
				t.Fatalf("c2s.listen %q, want :5222", cfg.C2S.Listen)
			}
		})
	}
}

// checkWebSocket checks the WebSocket settings of ci/full-values.yaml: the
// config.yaml keys, and that the Ingress routes the endpoint and both
// discovery paths through the websocket Service to the container port
// adhocd listens on, with the Ingress's TLS.
func checkWebSocket(t *testing.T, r rendered, cfg config.Config) {
	t.Helper()
	ws := cfg.WebSocket
	if ws.Listen != ":5281" || ws.Path != "/ws" || ws.TLS || ws.PublicURL != "wss://chat.example.org/ws" ||
		!slices.Equal(ws.AllowedOrigins, []string{"https://chat.example.org", "https://web.example.org:8443"}) {
		t.Fatalf("rendered websocket config: %+v", ws)
	}
	listenPort := strings.TrimPrefix(ws.Listen, ":")

	c := r.statefulSet.Spec.Template.Spec.Containers[0]
	cp := containerPort(c, "xmpp-websocket")
	if cp == nil || fmt.Sprint(cp.ContainerPort) != listenPort || cp.Protocol != corev1.ProtocolTCP {
		t.Fatalf("container port xmpp-websocket %+v, adhocd listens on %s", cp, ws.Listen)
	}

	wsSvc := service(r, "chat-adhocd-websocket")
	if wsSvc == nil {
		t.Fatal("no websocket Service")
	}
	if wsSvc.Spec.Type != corev1.ServiceTypeClusterIP || wsSvc.Annotations["example.org/ws"] != "true" {
		t.Fatalf("websocket Service type %s, annotations %v", wsSvc.Spec.Type, wsSvc.Annotations)
	}
	sp := servicePort(wsSvc, "xmpp-websocket")
	if sp == nil || sp.Port != 5281 || sp.TargetPort.StrVal != cp.Name || sp.AppProtocol == nil || *sp.AppProtocol != "kubernetes.io/ws" {
		t.Fatalf("websocket Service port: %+v", sp)
	}
	if hp := servicePort(service(r, "chat-adhocd-headless"), "xmpp-websocket"); hp == nil || hp.TargetPort.StrVal != cp.Name {
		t.Fatalf("headless Service websocket port: %+v", hp)
	}
	// The c2s Service is a LoadBalancer here: plain-HTTP WebSocket must
	// not be exposed through it, only through the Ingress.
	if p := servicePort(service(r, "chat-adhocd"), "xmpp-websocket"); p != nil {
		t.Fatalf("the c2s LoadBalancer Service exposes the WebSocket port: %+v", p)
	}

	ing := r.ingress
	if ing == nil {
		t.Fatal("no Ingress")
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" ||
		ing.Annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] != "3600" {
		t.Fatalf("Ingress class %v, annotations %v", ing.Spec.IngressClassName, ing.Annotations)
	}
	hosts := []string{"chat.example.org", "xmpp.example.org"}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "chat-web-tls" || !slices.Equal(ing.Spec.TLS[0].Hosts, hosts) {
		t.Fatalf("Ingress TLS: %+v", ing.Spec.TLS)
	}
	if len(ing.Spec.Rules) != len(hosts) {
		t.Fatalf("Ingress rules: %+v", ing.Spec.Rules)
	}
	for i, rule := range ing.Spec.Rules {
		if rule.Host != hosts[i] || rule.HTTP == nil {
			t.Fatalf("Ingress rule %d: %+v", i, rule)
		}
		var paths []string
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if p.PathType == nil || *p.PathType != networkingv1.PathTypeExact || b == nil || b.Name != wsSvc.Name || b.Port.Name != sp.Name {
				t.Fatalf("Ingress path %s on %s does not go to %s port %s: %+v", p.Path, rule.Host, wsSvc.Name, sp.Name, p)
			}
			paths = append(paths, p.Path)
		}
		if want := []string{ws.Path, "/.well-known/host-meta", "/.well-known/host-meta.json"}; !slices.Equal(paths, want) {
			t.Fatalf("Ingress paths on %s: %v, want %v", rule.Host, paths, want)
		}
	}
}

// TestWebSocketPublicURL checks the discovery URL derived from the Ingress
// when websocket.publicURL is empty: wss:// exactly when the Ingress
// terminates TLS for the first host, and left to adhocd (empty) without the
// Ingress or with a wildcard host.
func TestWebSocketPublicURL(t *testing.T) {
	on := func(more ...string) []string {
		return slices.Concat([]string{"--set", "websocket.enabled=true,websocket.ingress.enabled=true"}, more)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no ingress", []string{"--set", "websocket.enabled=true"}, ""},
		{"ingress without tls", on(), "ws://localhost/xmpp-websocket"},
		{"ingress tls", on("--set", "websocket.ingress.tls[0].secretName=web-tls"), "wss://localhost/xmpp-websocket"},
		{"tls for another host", on("--set", "websocket.ingress.hosts={a.example,b.example}",
			"--set", "websocket.ingress.tls[0].hosts={b.example}"), "ws://a.example/xmpp-websocket"},
		{"tls for the first host", on("--set", "websocket.ingress.hosts={a.example,b.example}",
			"--set", "websocket.ingress.tls[0].hosts={a.example}", "--set", "websocket.path=/x"), "wss://a.example/x"},
		{"wildcard host", on("--set", "websocket.ingress.hosts={*.example.org}"), ""},
		{"explicit", on("--set", "websocket.publicURL=wss://web.example.org:8443/xmpp"), "wss://web.example.org:8443/xmpp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "chat", chartDir()}, tc.args...)
			r := decode(t, run(t, args...))
			cfg := loadConfig(t, r.configMaps["chat-adhocd"])
			if cfg.WebSocket.PublicURL != tc.want {
				t.Fatalf("websocket.public_url %q, want %q", cfg.WebSocket.PublicURL, tc.want)
			}
			if cfg.WebSocket.Listen != ":5280" {
				t.Fatalf("websocket.listen %q, want :5280", cfg.WebSocket.Listen)
			}
		})
	}
}

// TestS2S: federation stays off unless s2s.enabled (adhocd's own default
// would listen on :5269 after an upgrade), listens on ":<s2s.port>" when
// enabled, or on the deprecated s2s.listen when set, and the schema
// refuses a listen that is not [host]:port and a host that is not
// host:port (s2s_test.go checks the rest).
func TestS2S(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, ""},
		{"a listen alone does not turn it on", []string{"--set", "s2s.listen=:5270"}, ""},
		{"enabled", []string{"--set", "s2s.enabled=true"}, ":5269"},
		{"enabled elsewhere", []string{"--set", "s2s.enabled=true,s2s.listen=0.0.0.0:5270"}, "0.0.0.0:5270"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := decode(t, run(t, append([]string{"template", "chat", chartDir()}, tc.args...)...))
			cfg := loadConfig(t, r.configMaps["chat-adhocd"])
			if cfg.S2S.Listen != tc.want || cfg.S2S.Enabled() != (tc.want != "") {
				t.Fatalf("s2s.listen %q (enabled %v), want %q", cfg.S2S.Listen, cfg.S2S.Enabled(), tc.want)
			}
			// The other keys are adhocd's defaults.
			def := config.DefaultS2S()
			if cfg.S2S.RequireTLS != def.RequireTLS || cfg.S2S.Limits != def.Limits || cfg.S2S.Hosts != nil {
				t.Fatalf("s2s %+v, want adhocd's defaults but listen", cfg.S2S)
			}
		})
	}
	for _, bad := range []string{"s2s.listen=5269", "s2s.listen=:", "s2s.listen=:port", "s2s.hosts.b=c"} {
		if out, errOut, err := runHelm(t, "template", "chat", chartDir(), "--set", bad); err == nil ||
			!strings.Contains(errOut, "s2s") {
			t.Errorf("--set %s: want a refusal naming s2s, got %v\n%s%s", bad, err, out, errOut)
		}
	}
}

// TestSchemaRefusesUnknownValues checks that misspelt and invalid values
// stop helm with a message naming them, rather than rendering a chart that
// adhocd refuses at start or that silently ignores them.
func TestSchemaRefusesUnknownValues(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"limits.maxStanzaByte=1", "maxStanzaByte"},
		{"websocket.ingress.host=chat.example.org", "host"},
		{"websocket.publicURL=https://chat.example.org/xmpp-websocket", "publicURL"},
		{"websocket.allowedOrigins[0]=chat.example.org", "allowedOrigins"},
		{"websocket.path=xmpp-websocket", "path"},
		{"websocket.ingress.enabled=true", "websocket.ingress.enabled needs websocket.enabled"},
		{"adminBootstrap.jid=boss@other.example", `adminBootstrap.jid "boss@other.example" is not on the server's domain "localhost"`},
		{"c2s.service.externalTrafficPolicy=Local", "c2s.service.externalTrafficPolicy needs c2s.service.type NodePort or LoadBalancer"},
		{"c2s.service.externalTrafficPolicy=local", "externalTrafficPolicy"},
		{"c2s.service.nodePort=30522", "c2s.service.nodePort needs c2s.service.type NodePort or LoadBalancer"},
		{"c2s.service.type=NodePort,c2s.service.loadBalancerSourceRanges={10.0.0.0/8}", "loadBalancerSourceRanges needs c2s.service.type LoadBalancer"},
		{"probes.liveness.successThreshold=2", "successThreshold"},
		{"serviceAccount.annotation.x=y", "annotation"},
		{"c2s.directTLS.enabled=true,c2s.directTLS.port=5222", "c2s.directTLS.port 5222 is also c2s.port"},
		{"c2s.directTLS.enabled=true,websocket.enabled=true,websocket.port=5223", "c2s.directTLS.port 5223 is also websocket.port"},
		{"c2s.directTLS.enabled=true,c2s.directTLS.nodePort=30523", "c2s.directTLS.nodePort needs c2s.service.type NodePort or LoadBalancer"},
		{"c2s.directTLS.port=0", "port"},
		{"limits.pep.maxAccountBytes=2048", "limits.pep.maxAccountBytes 2048 is less than limits.pep.maxItemBytes 131072"},
		{"limits.private.maxBytes=2048", "limits.private.maxBytes 2048 is less than limits.private.maxFragmentBytes 131072"},
		{"limits.sm.maxUnacked=5", "maxUnacked"},
		{"limits.mam.retention=1y", "retention"},
		{"limits.mam.maxPage=0", "maxPage"},
		{"limits.csi.maxHold=10", "maxHold"},
		{"limits.vcard.maxBytes=100", "maxBytes"},
	} {
		out, errOut, err := runHelm(t, "template", "chat", chartDir(), "--set", tc.set)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("--set %s was accepted or not named (%v): %s%s", tc.set, err, errOut, out)
		}
	}
}

// containerPort returns c's port called name, or nil.
func containerPort(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

// service returns the rendered Service called name, or nil.
func service(r rendered, name string) *corev1.Service {
	for _, s := range r.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// servicePort returns svc's port called name, or nil (also for a nil svc).
func servicePort(svc *corev1.Service, name string) *corev1.ServicePort {
	if svc == nil {
		return nil
	}
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == name {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

// loadConfig loads the rendered config.yaml with adhocd's own loader.
func loadConfig(t *testing.T, cm *corev1.ConfigMap) config.Config {
	t.Helper()
	if cm == nil {
		t.Fatal("no ConfigMap")
	}
	data, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatal("no config.yaml in the ConfigMap")
	}
	cfg, err := config.Parse([]byte(data))
	if err != nil {
		t.Fatalf("adhocd refuses the rendered config.yaml: %v\n%s", err, data)
	}
	return cfg
}

// env returns c's environment variable called name, or nil.
func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// secretRef returns the Secret key e is taken from, or nil.
func secretRef(e *corev1.EnvVar) *corev1.SecretKeySelector {
	if e == nil || e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

// checkTestPod checks the helm test hook: a Pod of the server's image that
// runs adhocctl as jid, with the password from secret's key, against the
// c2s Service in namespace, checking the certificate against the
// tls.existingSecret the server's pods mount (else --insecure).
func checkTestPod(t *testing.T, r rendered, namespace, jid, secret, key string) {
	t.Helper()
	p := r.testPod
	if p == nil {
		t.Fatal("no helm test Pod")
	}
	if p.Annotations["helm.sh/hook"] != "test" || p.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("test Pod annotations %v, restartPolicy %s", p.Annotations, p.Spec.RestartPolicy)
	}
	if p.Spec.AutomountServiceAccountToken == nil || *p.Spec.AutomountServiceAccountToken {
		t.Fatal("the test Pod mounts a ServiceAccount token")
	}
	if len(p.Spec.Containers) != 1 {
		t.Fatalf("test Pod containers: %+v", p.Spec.Containers)
	}
	c := p.Spec.Containers[0]
	_, serverPod := r.workload(t)
	server := serverPod.Spec.Containers[0]
	if c.Image != server.Image || !slices.Equal(c.Command, []string{"/usr/local/bin/adhocctl"}) {
		t.Fatalf("test Pod runs %q from %s, the server is %s", c.Command, c.Image, server.Image)
	}
	var tlsSecret string
	for _, v := range serverPod.Spec.Volumes {
		if v.Name == "tls" {
			tlsSecret = v.Secret.SecretName
		}
	}
	verify := []string{"--insecure"}
	if tlsSecret != "" {
		verify = []string{"--ca", "/etc/adhocd/tls/tls.crt"}
		if len(p.Spec.Volumes) != 1 || p.Spec.Volumes[0].Secret == nil || p.Spec.Volumes[0].Secret.SecretName != tlsSecret ||
			len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != p.Spec.Volumes[0].Name || c.VolumeMounts[0].MountPath != "/etc/adhocd/tls" {
			t.Fatalf("test Pod does not mount %s's tls.crt: volumes %+v, mounts %+v", tlsSecret, p.Spec.Volumes, c.VolumeMounts)
		}
	}
	args := slices.Concat([]string{"--jid", jid}, verify)
	if len(c.Args) != len(args)+4 || !slices.Equal(c.Args[:len(args)], args) || c.Args[len(args)] != "--timeout" ||
		!slices.Equal(c.Args[len(args)+2:], []string{"run", "get-online-users-num"}) {
		t.Fatalf("test Pod args %q, want %q --timeout D run get-online-users-num", c.Args, args)
	}
	// The c2s Service of the release, by its DNS name, on its port.
	svc := r.services[0]
	if p := servicePort(svc, "xmpp-client"); p == nil {
		t.Fatalf("the first Service %s has no xmpp-client port", svc.Name)
	}
	wantServer := fmt.Sprintf("%s.%s.svc:%d", svc.Name, namespace, servicePort(svc, "xmpp-client").Port)
	if e := env(c, "ADHOCCTL_SERVER"); e == nil || e.Value != wantServer {
		t.Fatalf("ADHOCCTL_SERVER %+v, want %s", e, wantServer)
	}
	if ref := secretRef(env(c, "ADHOCCTL_PASSWORD")); ref == nil || ref.Name != secret || ref.Key != key {
		t.Fatalf("ADHOCCTL_PASSWORD from %+v, want %s/%s", ref, secret, key)
	}
	if ref := secretRef(env(server, "ADHOCD_ADMIN_PASSWORD")); ref == nil || ref.Name != secret || ref.Key != key {
		t.Fatalf("the server's ADHOCD_ADMIN_PASSWORD from %+v, want %s/%s", ref, secret, key)
	}
}
