package helm_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestSubchart uses the chart as a dependency of another chart, as an
// umbrella chart does: Helm then passes the `global` value to it, which the
// schema must allow. The parent depends on the chart through file://,
// `helm dependency build` packs it into the parent's charts/, and the parent
// is rendered with empty values and with values for the subchart.
func TestSubchart(t *testing.T) {
	chart, err := filepath.Abs(chartDir())
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(parent, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Chart.yaml", fmt.Sprintf(`apiVersion: v2
name: chat-platform
version: 1.0.0
dependencies:
  - name: adhocd
    version: 0.1.0
    repository: file://%s
`, chart))
	write("values.yaml", "")
	run(t, "dependency", "build", parent)
	if m, _ := filepath.Glob(filepath.Join(parent, "charts", "adhocd-*.tgz")); len(m) != 1 {
		t.Fatalf("helm dependency build packed %v", m)
	}

	r := decode(t, run(t, "template", "platform", parent, "--namespace", "xmpp"))
	if r.statefulSet == nil || r.statefulSet.Name != "platform-adhocd" || len(r.secrets) != 1 || r.serviceAccount == nil {
		t.Fatalf("the subchart with empty values: statefulset %+v, secrets %d", r.statefulSet, len(r.secrets))
	}
	if cfg := loadConfig(t, r.configMaps["platform-adhocd"]); cfg.Domain != "localhost" {
		t.Fatalf("domain %q", cfg.Domain)
	}
	checkTestPod(t, r, "xmpp", "admin@localhost", "platform-adhocd-admin", "password")

	// The parent's values for the subchart, and globals of its own.
	write("values.yaml", `global:
  imageRegistry: registry.example
adhocd:
  domain: chat.example.org
  networkPolicy:
    enabled: true
`)
	r = decode(t, run(t, "template", "platform", parent))
	if cfg := loadConfig(t, r.configMaps["platform-adhocd"]); cfg.Domain != "chat.example.org" || r.networkPolicy == nil {
		t.Fatalf("the parent's values did not reach the subchart: domain %q, networkpolicy %v", cfg.Domain, r.networkPolicy != nil)
	}
	if e := env(r.statefulSet.Spec.Template.Spec.Containers[0], "ADHOCD_ADMIN_JID"); e == nil || e.Value != "admin@chat.example.org" {
		t.Fatalf("ADHOCD_ADMIN_JID %+v", e)
	}
	run(t, "lint", "--strict", parent)
}
