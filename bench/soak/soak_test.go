package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGrowth: the criterion fails a series that keeps rising and passes one
// that levels off, one that is flat with noise, and growth below the floor.
func TestGrowth(t *testing.T) {
	rss := growthSeries[0]
	mk := func(f func(t float64) float64) []sample {
		var s []sample
		for i := 0; i < 120; i++ {
			ts := float64(i * 5)
			s = append(s, sample{t: ts, rssKiB: int64(f(ts))})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		f    func(t float64) float64
		fail bool
	}{
		{"steady leak", func(t float64) float64 { return 30000 + 100*t }, true},
		{"levels off", func(t float64) float64 { return 30000 + 40000*(1-1/(1+t/20)) }, false},
		{"flat with noise", func(t float64) float64 { return 30000 + float64(int(t)%7)*500 }, false},
		{"grows below the floor", func(t float64) float64 { return 30000 + 10*t }, false},
		{"falls", func(t float64) float64 { return 90000 - 100*t }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, _, _ := growth(mk(tc.f), rss, 10)
			if (msg != "") != tc.fail {
				t.Errorf("growth = %q, want failure %v", msg, tc.fail)
			}
		})
	}
}

// TestSoakShort runs the short mode against a real adhocd built from this
// checkout: mixed load for 20 s, then every check. It takes about 45 s, so
// it runs only with SOAK=1 (CI runs it in its own step) and not with -short.
func TestSoakShort(t *testing.T) {
	if os.Getenv("SOAK") != "1" {
		t.Skip("set SOAK=1 to run the 20 s soak (go run ./bench/soak --short)")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	out := t.TempDir()
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := run(ctx, []string{"--short", "--out", out}, &stdout, &stderr)
	t.Log(stdout.String())
	if err != nil {
		t.Fatalf("soak --short: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "soak: PASS") {
		t.Errorf("no PASS in the report")
	}
	f, err := os.Open(filepath.Join(out, "samples.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	samples, err := readSamples(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) < 15 {
		t.Fatalf("%d samples in 20 s at one a second, want at least 15", len(samples))
	}
	for _, s := range samples {
		if s.rssKiB <= 0 || s.privKiB <= 0 || s.heapKiB <= 0 || s.goroutines <= 0 || s.fds <= 0 || s.storeKiB <= 0 {
			t.Fatalf("sample with a missing reading: %+v", s)
		}
	}
	for _, want := range []string{"delivered chat", "delivered offline from offline storage", "command flows abandoned", "roster changes confirmed", "delivered slow"} {
		if !strings.Contains(stdout.String(), want+": ") {
			t.Errorf("the report has no %q: that part of the load did not run", want)
		}
	}
}

// TestChaosShort runs a short chaos run against a real adhocd built from
// this checkout: 24 s of mixed load with a SIGKILL and a restart on the same
// store every 6 s, then the chaos checks: every offline message confirmed
// by a ping barrier delivered, every account created through the control
// socket able to log in, every confirmed roster change in the roster. Like
// TestSoakShort it runs only with SOAK=1 and not with -short; it takes about
// a minute (build, load, drain, collection).
func TestChaosShort(t *testing.T) {
	if os.Getenv("SOAK") != "1" {
		t.Skip("set SOAK=1 to run the 24 s chaos run (go run ./bench/soak --chaos --duration 24s --kill-every 6s)")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	out := t.TempDir()
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := run(ctx, []string{"--chaos", "--duration", "24s", "--kill-every", "6s", "--sample", "1s", "--out", out}, &stdout, &stderr)
	report := stdout.String()
	t.Log(report)
	if err != nil {
		t.Fatalf("soak --chaos: %v\n%s\nadhocd log (last lines):\n%s", err, stderr.String(), tail(filepath.Join(out, "adhocd.log")))
	}
	if !strings.Contains(report, "soak: PASS") {
		t.Fatalf("no PASS in the report")
	}
	// The kills happened: at 6, 12 and 18 s, fewer only if a restart on a
	// loaded machine took several seconds (the ticker then drops a kill).
	m := regexp.MustCompile(`SIGKILL every 6s, (\d+) restarts`).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("the report does not say how many restarts there were")
	}
	if n, _ := strconv.Atoi(m[1]); n < 2 {
		t.Errorf("%d restarts in 24 s with a kill every 6 s, want at least 2", n)
	}
	// Nothing confirmed was lost (PASS says so; the report's own figure too).
	if !regexp.MustCompile(`(?m)^tracked messages: \d+, lost: 0 `).MatchString(report) {
		t.Errorf("the report does not say that no confirmed message was lost")
	}
	// Each check had something to check: accounts made while the server was
	// killed and restarted, offline batches confirmed (some of them before
	// a kill and delivered after the restart) and roster changes confirmed.
	if m := regexp.MustCompile(`accounts created while running: (\d+)`).FindStringSubmatch(report); m == nil || m[1] == "0" {
		t.Errorf("no account was created during the run: the account check checked nothing")
	}
	for _, want := range []string{"offline batches confirmed", "delivered offline", "delivered offline after a restart (confirmed before it)", "roster changes confirmed"} {
		m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(want) + `: (\d+)$`).FindStringSubmatch(report)
		if m == nil || m[1] == "0" {
			t.Errorf("the report has no %q: that check had nothing to check", want)
		}
	}
}
