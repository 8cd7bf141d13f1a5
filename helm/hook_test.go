package helm_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/adhocd/adhocd/servertest"
)

// TestHelmTestPodRuns runs what the rendered helm test Pod runs, on this
// machine: adhocd is started as the StatefulSet starts it (its args, the
// rendered config.yaml, ADHOCD_ADMIN_* with the rendered Secret's password),
// with the listeners moved to 127.0.0.1 and the data folder to a scratch
// one; then the test Pod's command line runs with its environment, the
// password taken from the Secret its env names and ADHOCCTL_SERVER pointed
// at that listener. It must exit 0 and print the number of online users.
func TestHelmTestPodRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds adhocd and adhocctl")
	}
	r := decode(t, run(t, "template", "chat", chartDir(), "--namespace", "xmpp", "--set", "adminBootstrap.password=Tr0ub4dor&3"))
	bin := t.TempDir()
	for _, cmd := range []string{"adhocd", "adhocctl"} {
		// Built in the server's module, with its own go.sum.
		build := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "./cmd/"+cmd)
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", cmd, err, out)
		}
	}

	// adhocd, as the StatefulSet's container.
	c2sAddr, metricsAddr := servertest.FreeAddr(t), servertest.FreeAddr(t)
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(r.configMaps["chat-adhocd"].Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["c2s"].(map[string]any)["listen"] = c2sAddr
	cfg["metrics"].(map[string]any)["listen"] = metricsAddr
	cfg["storage"].(map[string]any)["path"] = t.TempDir()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	server := r.statefulSet.Spec.Template.Spec.Containers[0]
	args := strings.Fields(strings.ReplaceAll(strings.Join(server.Args, " "), "/etc/adhocd/config.yaml", cfgFile))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	adhocd := exec.CommandContext(ctx, filepath.Join(bin, "adhocd"), args...)
	adhocd.Env = append(os.Environ(), podEnv(t, r, server)...)
	var serverLog bytes.Buffer
	adhocd.Stdout, adhocd.Stderr = &serverLog, &serverLog
	if err := adhocd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = adhocd.Process.Signal(syscall.SIGTERM)
		_ = adhocd.Wait()
		if t.Failed() {
			t.Logf("adhocd:\n%s", serverLog.String())
		}
	}()
	waitReady(t, "http://"+metricsAddr+"/readyz")

	// The test Pod's container, with ADHOCCTL_SERVER on this machine.
	pod := r.testPod.Spec.Containers[0]
	if filepath.Base(pod.Command[0]) != "adhocctl" {
		t.Fatalf("the test Pod runs %q", pod.Command)
	}
	ctl := exec.CommandContext(ctx, filepath.Join(bin, "adhocctl"), pod.Args...)
	ctl.Env = append(os.Environ(), podEnv(t, r, pod)...)
	for i, e := range ctl.Env {
		if strings.HasPrefix(e, "ADHOCCTL_SERVER=") {
			ctl.Env[i] = "ADHOCCTL_SERVER=" + c2sAddr
		}
	}
	out, err := ctl.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "online users") {
		t.Fatalf("adhocctl %q: %v\n%s", pod.Args, err, out)
	}
	t.Logf("adhocctl: %s", strings.TrimSpace(string(out)))
}

// podEnv returns c's environment as KEY=value, values from a Secret taken
// from the rendered Secrets.
func podEnv(t *testing.T, r rendered, c corev1.Container) []string {
	t.Helper()
	var env []string
	for _, e := range c.Env {
		v := e.Value
		if ref := secretRef(&e); ref != nil {
			found := false
			for _, s := range r.secrets {
				if s.Name == ref.Name {
					v, found = string(s.Data[ref.Key]), s.Data[ref.Key] != nil
				}
			}
			if !found {
				t.Fatalf("%s: no rendered Secret %s with key %s", e.Name, ref.Name, ref.Key)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env
}

// waitReady polls url until it answers 200, for at most 20 seconds.
func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, fmt.Sprint(err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
