package main

import (
	"context"
	"os"
	"path/filepath"
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
