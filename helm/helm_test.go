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
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/adhocd/adhocd/server/config"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, helm(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

// strict decodes YAML into v, refusing unknown fields.
func strict(doc []byte, v any) error { return yaml.UnmarshalStrict(doc, v) }

type rendered struct {
	statefulSet *appsv1.StatefulSet
	services    []*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     []*corev1.Secret
	pdb         *policyv1.PodDisruptionBudget
	other       map[string]map[string]any // kind → object (CRDs)
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
		case "PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			err = strict([]byte(doc), r.pdb)
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

func chartDir() string { return filepath.Join("adhocd") }

func TestLint(t *testing.T) {
	run(t, "lint", "--strict", chartDir())
	run(t, "lint", "--strict", chartDir(), "-f", filepath.Join(chartDir(), "ci", "full-values.yaml"))
}

// TestDefaultValues renders the chart as installed without values and checks
// the manifests and the config.yaml adhocd will load.
func TestDefaultValues(t *testing.T) {
	r := decode(t, run(t, "template", "chat", chartDir(), "--namespace", "xmpp"))
	sts := r.statefulSet
	if sts == nil || *sts.Spec.Replicas != 1 || len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("statefulset: %+v", sts)
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
	if len(r.services) != 3 || r.pdb == nil || len(r.secrets) != 1 || r.other["ServiceMonitor"] != nil {
		t.Fatalf("services %d, pdb %v, secrets %d", len(r.services), r.pdb != nil, len(r.secrets))
	}
	if pw := r.secrets[0].Data["password"]; len(pw) < 16 {
		t.Fatalf("generated admin password %q", pw)
	}
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	if cfg.Domain != "localhost" || cfg.Storage.Path != "/data" || !cfg.Adhoc.Persist || cfg.Metrics.Listen != ":9090" {
		t.Fatalf("rendered config: %+v", cfg)
	}
	def := config.Default()
	if cfg.Limits != def.Limits || cfg.Admin.IdleAfter != def.Admin.IdleAfter {
		t.Fatalf("chart defaults differ from adhocd's: %+v vs %+v", cfg.Limits, def.Limits)
	}
}

// TestFullValues sets every value and checks that each reached its place.
func TestFullValues(t *testing.T) {
	r := decode(t, run(t, "template", "chat", chartDir(), "-f", filepath.Join(chartDir(), "ci", "full-values.yaml")))
	cfg := loadConfig(t, r.configMaps["chat-adhocd"])
	if cfg.Domain != "chat.example.org" || cfg.C2S.Listen != ":5223" || cfg.TLS.CertFile != "/etc/adhocd/tls/tls.crt" ||
		cfg.Limits.MaxStanzaBytes != 131072 || cfg.Limits.IdleTimeout.D() != 30*time.Minute || cfg.OTel.Exporter != "otlp" ||
		cfg.Adhoc.MaxSessions != 50000 || cfg.Admin.MOTD != "Welcome to chat.example.org" || cfg.Storage.SCRAMIterations != 10000 || cfg.Limits.MaxOfflineMessages != 50 ||
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
	env := pod.Containers[0].Env
	if len(env) != 2 || env[1].ValueFrom.SecretKeyRef.Name != "admin-password" {
		t.Fatalf("admin password env: %+v", env)
	}
	if r.other["ServiceMonitor"] == nil || r.configMaps["chat-adhocd-dashboard"] == nil {
		t.Fatal("ServiceMonitor or dashboard ConfigMap missing")
	}
	if !strings.Contains(r.configMaps["chat-adhocd-dashboard"].Data["adhocd.json"], "adhocd_command_executions_total") {
		t.Fatal("the dashboard ConfigMap lacks the dashboard")
	}
}

func TestSchemaRefusesUnknownValues(t *testing.T) {
	cmd := exec.Command(helm(t), "template", "chat", chartDir(), "--set", "limits.maxStanzaByte=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "maxStanzaByte") {
		t.Fatalf("a misspelt value was accepted: %v %s", err, out)
	}
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
