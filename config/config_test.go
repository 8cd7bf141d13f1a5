package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
)

func TestShippedConfigLoads(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatalf("the config.yaml in the repository does not load: %v", err)
	}
	def := config.Default()
	if cfg.Domain != "localhost" || cfg.C2S.Listen != ":5222" || !cfg.C2S.RequireTLS {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if cfg.Limits != def.Limits || cfg.Adhoc != def.Adhoc || cfg.Admin != def.Admin || cfg.OTel != def.OTel {
		t.Fatalf("config.yaml disagrees with Default():\n%+v\n%+v", cfg.Limits, def.Limits)
	}
	if cfg.MUC != def.MUC || cfg.HTTPUpload.MaxFileBytes != def.HTTPUpload.MaxFileBytes || cfg.HTTPUpload.Enabled ||
		cfg.HTTPUpload.Listen != def.HTTPUpload.Listen || cfg.HTTPUpload.ExpireAfter != def.HTTPUpload.ExpireAfter ||
		cfg.HTTPUpload.QuotaTotalBytes != def.HTTPUpload.QuotaTotalBytes || cfg.HTTPUpload.QuotaPerUserBytes != def.HTTPUpload.QuotaPerUserBytes ||
		cfg.HTTPUpload.SlotLifetime != def.HTTPUpload.SlotLifetime || cfg.HTTPUpload.MaxPendingSlots != def.HTTPUpload.MaxPendingSlots ||
		cfg.Components.Listen != def.Components.Listen || len(cfg.Components.Services) != 0 {
		t.Fatalf("config.yaml's muc, http_upload or components disagree with Default():\n%+v %+v %+v\n%+v %+v %+v",
			cfg.MUC, cfg.HTTPUpload, cfg.Components, def.MUC, def.HTTPUpload, def.Components)
	}
	if !filepath.IsAbs(cfg.Storage.Path) || filepath.Base(cfg.Storage.Path) != "data" {
		t.Fatalf("storage path not resolved against the file: %q", cfg.Storage.Path)
	}
}

func TestUnknownKeyNamesKeyAndLine(t *testing.T) {
	_, err := config.Parse([]byte("domain: example.org\nlimits:\n  max_stanza_byte: 10\n"))
	if err == nil {
		t.Fatal("an unknown key was accepted")
	}
	if !strings.Contains(err.Error(), "max_stanza_byte") || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("error does not name the key and line: %v", err)
	}
}

func TestParse(t *testing.T) {
	cfg, err := config.Parse([]byte("domain: Example.ORG\nadmins: [Root@example.org]\nlimits:\n  pre_auth_timeout: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "example.org" || cfg.Admins[0] != "root@example.org" {
		t.Fatalf("not normalised: %q %q", cfg.Domain, cfg.Admins)
	}
	if cfg.Limits.PreAuthTimeout.D() != 5*time.Second || cfg.Limits.MaxStanzaBytes != 256<<10 {
		t.Fatalf("limits %+v", cfg.Limits)
	}
	empty, err := config.Parse(nil)
	if err != nil || empty.Domain != "localhost" {
		t.Fatalf("an empty file must give the defaults: %+v %v", empty, err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"domain: ''", "domain"},
		{"domain: a@b", "bare domain"},
		{"admins: [nobody]", "admins[0]"},
		{"c2s: {listen: nowhere}", "c2s.listen"},
		{"metrics: {listen: nowhere}", "metrics.listen"},
		{"debug: {pprof_listen: nowhere}", "debug.pprof_listen"},
		{"tls: {cert_file: a.pem}", "set together"},
		{"storage: {scram_iterations: 100}", "4096"},
		{"limits: {max_stanza_bytes: 10}", "at least 1024"},
		{"limits: {max_depth: 0}", "limits.max_depth"},
		{"limits: {pre_auth_timeout: 0s}", "limits.pre_auth_timeout"},
		{"limits: {pre_auth_timeout: soon}", "duration"},
		{"adhoc: {max_sessions: -1}", "adhoc.max_sessions"},
		{"limits: {admin_reserved_connections: -1}", "limits.admin_reserved_connections -1: must be 0 (none) or more"},
		{"limits: {rate: {stanzas_per_second: -5}}", "limits.rate.stanzas_per_second -5: must be 0 (off) or more"},
		{"limits: {rate: {burst_bytes: -1}}", "limits.rate.burst_bytes"},
		{"limits: {max_offline_bytes: 0}", "limits.max_offline_bytes 0: must be positive"},
		{"limits: {max_offline_total_bytes: 0}", "limits.max_offline_total_bytes"},
		{"limits: {offline_ttl: -1h}", "limits.offline_ttl"},
		{"limits: {min_free_disk_bytes: -1}", "limits.min_free_disk_bytes"},
		{"limits: {max_auth_failures_per_account_address: 0}", "limits.max_auth_failures_per_account_address"},
		{"tls: {reload_interval: -1s}", "tls.reload_interval"},
		{"log: {level: loud}", "log.level"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error mentioning %q, got %v", tc.yaml, tc.want, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
