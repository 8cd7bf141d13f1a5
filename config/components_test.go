package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/config"
)

func TestComponentsDefault(t *testing.T) {
	c := config.Default().Components
	if c.Listen != "127.0.0.1:5347" || len(c.Services) != 0 {
		t.Fatalf("components default %+v, want listen 127.0.0.1:5347 and no component", c)
	}
}

func TestComponentsParse(t *testing.T) {
	cfg, err := config.Parse([]byte(`
components:
  listen: 127.0.0.1:5999
  services:
    - domain: Gateway.Example.ORG
      secret_env: GW_SECRET
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Components.Services
	if cfg.Components.Listen != "127.0.0.1:5999" || len(s) != 1 || s[0].Domain != "gateway.example.org" || s[0].SecretEnv != "GW_SECRET" {
		t.Fatalf("components %+v: want the listener and one service, its domain normalised", cfg.Components)
	}
}

func TestComponentsValidate(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"components:\n  services: [{domain: localhost, secret_env: S}]", "the server's own domain"},
		{"components:\n  services: [{domain: conference.localhost, secret_env: S}]", "group chat service's domain"},
		{"components:\n  services: [{domain: gw.localhost, secret_env: S}, {domain: GW.localhost, secret_env: T}]", "listed twice"},
		{"components:\n  services: [{domain: gw.localhost}]", "exactly one of secret_file and secret_env"},
		{"components:\n  services: [{domain: gw.localhost, secret_env: S, secret_file: /f}]", "exactly one of secret_file and secret_env"},
		{"components:\n  services: [{domain: 'a@gw.localhost', secret_env: S}]", "not a domain"},
		{"components:\n  services: [{secret_env: S}]", "domain: must be set"},
		{"components:\n  listen: nope\n  services: [{domain: gw.localhost, secret_env: S}]", "components.listen"},
	} {
		_, err := config.Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.yaml, err, tc.want)
		}
	}
	// A group chat service turned off leaves its domain free, and an empty
	// listener with nothing to serve is not checked.
	if _, err := config.Parse([]byte("muc:\n  enabled: false\ncomponents:\n  listen: ''\n  services: [{domain: conference.localhost, secret_env: S}]")); err != nil {
		t.Errorf("a component on the domain of a disabled muc: %v", err)
	}
}

func TestComponentSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("  s3cr3t value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := config.ComponentService{Domain: "gw.example", SecretFile: file}.Secret()
	if err != nil || got != "s3cr3t value" {
		t.Fatalf("secret from a file: %q, %v; want the content without the white space around it", got, err)
	}
	t.Setenv("ADHOCD_TEST_COMPONENT_SECRET", "from-env")
	got, err = config.ComponentService{Domain: "gw.example", SecretEnv: "ADHOCD_TEST_COMPONENT_SECRET"}.Secret()
	if err != nil || got != "from-env" {
		t.Fatalf("secret from the environment: %q, %v", got, err)
	}

	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 5000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    config.ComponentService
		want string
	}{
		{config.ComponentService{Domain: "gw.example", SecretFile: empty}, "is empty"},
		{config.ComponentService{Domain: "gw.example", SecretFile: big}, "larger than"},
		{config.ComponentService{Domain: "gw.example", SecretFile: filepath.Join(dir, "none")}, "secret_file"},
		{config.ComponentService{Domain: "gw.example", SecretEnv: "ADHOCD_TEST_COMPONENT_UNSET"}, "ADHOCD_TEST_COMPONENT_UNSET is not set"},
	} {
		if _, err := tc.s.Secret(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one saying %q", tc.s, err, tc.want)
		}
	}
}

func TestComponentSecretFileRelativeToConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	yaml := "components:\n  services: [{domain: gw.localhost, secret_file: secrets/gw}]\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Components.Services[0].SecretFile, filepath.Join(dir, "secrets", "gw"); got != want {
		t.Fatalf("secret_file %q, want %q (resolved against the file's folder)", got, want)
	}
}
