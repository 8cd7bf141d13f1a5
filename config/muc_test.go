package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
)

// TestMUCArchive: the room archive's bounds default to 10000 messages and
// a year, parse, and refuse negative values; 0 is allowed for both.
func TestMUCArchive(t *testing.T) {
	d := config.Default().MUC
	if d.ArchiveMaxMessages != 10000 || d.ArchiveRetention.D() != 8760*time.Hour {
		t.Fatalf("muc archive defaults %d, %v", d.ArchiveMaxMessages, d.ArchiveRetention.D())
	}
	cfg, err := config.Parse([]byte("muc:\n  archive_max_messages: 0\n  archive_retention: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MUC.ArchiveMaxMessages != 0 || cfg.MUC.ArchiveRetention != 0 {
		t.Fatalf("muc archive %+v", cfg.MUC)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"muc: {archive_max_messages: -1}", "muc.archive_max_messages -1"},
		{"muc: {archive_retention: -1h}", "muc.archive_retention"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error mentioning %q, got %v", tc.yaml, tc.want, err)
		}
	}
}

// TestMUCMessageRate: an occupant's rate defaults to 5 a second with bursts
// of 25, 0 turns it off, and a negative rate or a rate without a burst is
// refused with the key named.
func TestMUCMessageRate(t *testing.T) {
	d := config.Default().MUC
	if d.MessageRate != 5 || d.MessageBurst != 25 {
		t.Fatalf("muc rate defaults %g/%d", d.MessageRate, d.MessageBurst)
	}
	cfg, err := config.Parse([]byte("muc:\n  message_rate: 0.5\n  message_burst: 3\n"))
	if err != nil || cfg.MUC.MessageRate != 0.5 || cfg.MUC.MessageBurst != 3 {
		t.Fatalf("muc rate %+v, %v", cfg.MUC, err)
	}
	if cfg, err := config.Parse([]byte("muc: {message_rate: 0, message_burst: 0}")); err != nil || cfg.MUC.MessageRate != 0 {
		t.Fatalf("muc rate off: %+v, %v", cfg.MUC, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"muc: {message_rate: -1}", "muc.message_rate -1"},
		{"muc: {message_rate: 2, message_burst: 0}", "muc.message_burst 0"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error mentioning %q, got %v", tc.yaml, tc.want, err)
		}
	}
}
