package licenses_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/image/licenses"
)

// binaries are the commands the image ships.
var binaries = []string{"./cmd/adhocd", "./cmd/adhocctl"}

// TestDependencyLicenses is the licence check of CI: every package linked
// into the image's binaries is covered by a licence file that is identified
// and accepted.
func TestDependencyLicenses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := licenses.Collect(ctx, "../..", binaries...)
	if err != nil {
		t.Fatal(err)
	}
	if err := licenses.Check(ns); err != nil {
		t.Fatalf("the binaries link code under a licence that is not accepted or not identified:\n%v", err)
	}

	// Every linked package outside this module is covered exactly once,
	// asked of the go command apart from Collect.
	covered := map[string]int{}
	for _, n := range ns {
		for _, p := range n.Packages {
			covered[p]++
		}
		if len(n.Files) == 0 {
			t.Errorf("%s (%q): no files", n.Module, n.Dir)
		}
	}
	for _, p := range linked(t) {
		if covered[p] != 1 {
			t.Errorf("package %s is covered by %d notices, want 1", p, covered[p])
		}
	}
	if ns[0].Module != licenses.Std || !slices.Equal(ns[0].Licenses, []string{"BSD-3-Clause"}) {
		t.Errorf("first notice = %s %v, want the Go distribution under BSD-3-Clause", ns[0].Module, ns[0].Licenses)
	}
	t.Logf("%d notices, %d packages", len(ns), len(covered))
}

// linked returns the import paths of the packages linked into the
// binaries, outside the main module.
func linked(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{if not (and .Module .Module.Main)}}{{.ImportPath}}{{end}}"}, binaries...)...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

// TestWrite checks that the notices folder holds each file as found and an
// index line per notice.
func TestWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns, err := licenses.Collect(ctx, "../..", binaries...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := licenses.Write(dir, ns); err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		for _, f := range n.Files {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, n.Path(), filepath.Base(f)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: copy differs from %s", filepath.Join(n.Path(), filepath.Base(f)), f)
			}
		}
	}
	idx, err := os.ReadFile(filepath.Join(dir, licenses.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	for _, line := range strings.Split(strings.TrimSpace(string(idx)), "\n") {
		if strings.HasPrefix(line, "#") || strings.HasPrefix(line, "module\t") {
			continue
		}
		if f := strings.Split(line, "\t"); len(f) != 5 || f[2] == "" {
			t.Errorf("index line %q: want 5 fields with licences", line)
		}
		rows++
	}
	if rows != len(ns) {
		t.Errorf("index has %d rows, want %d", rows, len(ns))
	}
}

// TestIdentify reads real licence files from the module cache and texts
// that must be refused.
func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		module, file string
		want         []string
	}{
		{"golang.org/x/sys", "LICENSE", []string{"BSD-3-Clause"}},
		{"mellium.im/sasl", "LICENSE", []string{"BSD-2-Clause"}},
		{"github.com/coder/websocket", "LICENSE.txt", []string{"ISC"}},
		{"go.etcd.io/bbolt", "LICENSE", []string{"MIT"}},
		{"github.com/hashicorp/golang-lru/v2", "LICENSE", []string{"MPL-2.0"}},
		{"github.com/prometheus/common", "LICENSE", []string{"Apache-2.0"}},
		{"go.yaml.in/yaml/v3", "LICENSE", []string{"Apache-2.0", "MIT"}},
	} {
		text, err := os.ReadFile(filepath.Join(moduleDir(t, tc.module), tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if got := licenses.Identify(text); !slices.Equal(got, tc.want) {
			t.Errorf("%s/%s: Identify = %v, want %v", tc.module, tc.file, got, tc.want)
		}
	}

	// Debian's copies of the licence texts (package base-files).
	const common = "/usr/share/common-licenses"
	if _, err := os.Stat(common); err == nil {
		for file, want := range map[string][]string{
			"Apache-2.0": {"Apache-2.0"},
			"BSD":        {"BSD-3-Clause"},
			"MPL-2.0":    {"MPL-2.0"},
			"GPL-2":      {"GPL"},
			"GPL-3":      {"GPL"},
			"LGPL-2.1":   {"LGPL"},
			"LGPL-3":     {"LGPL"},
			"MPL-1.1":    nil,
			"Artistic":   nil,
		} {
			text, err := os.ReadFile(filepath.Join(common, file))
			if err != nil {
				t.Fatal(err)
			}
			if got := licenses.Identify(text); !slices.Equal(got, want) {
				t.Errorf("%s/%s: Identify = %v, want %v", common, file, got, want)
			}
		}
	} else {
		t.Logf("%s: %v; the texts Debian ships are not tried", common, err)
	}

	bsd2, err := os.ReadFile(filepath.Join(moduleDir(t, "mellium.im/sasl"), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"empty", "", nil},
		// A bare ownership line (spelt in two parts, so that this file
		// carries no such line itself) is no licence.
		{"only a copyright line", "Copy" + "right 2020 Someone. All rights reserved.", nil},
		{"GPL notice", "This program is free software: you can redistribute it and/or modify\n// it under the terms of the GNU General Public License as published by\n// the Free Software Foundation, either version 3 of the License.", []string{"GPL"}},
		{"BSD with the advertising clause", string(bsd2) + "\n3. All advertising materials mentioning features or use of this software\n   must display the following acknowledgement: This product includes software developed by Someone.", []string{"BSD-4-Clause"}},
		{"MIT without its conditions", "Permission is hereby granted, free of charge, to any person obtaining a copy of this software.", nil},
	} {
		if got := licenses.Identify([]byte(tc.text)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Identify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// moduleDir returns where the go command keeps module (a dependency of
// this module) in the module cache.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-json", module)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", module, err)
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		t.Fatalf("go list -m %s: no folder (go mod download): %v", module, err)
	}
	return m.Dir
}

// TestCheck checks that a licence outside the accepted set, and one that
// was not identified, are refused by name.
func TestCheck(t *testing.T) {
	ok := licenses.Notice{Module: "example.org/ok", Version: "v1.0.0", Licenses: []string{"MIT"}, Files: []string{"/m/LICENSE"}}
	if err := licenses.Check([]licenses.Notice{ok}); err != nil {
		t.Errorf("Check(MIT) = %v", err)
	}
	gpl := licenses.Notice{Module: "example.org/gpl", Version: "v1.0.0", Licenses: []string{"Apache-2.0", "GPL"}, Files: []string{"/g/COPYING"}}
	none := licenses.Notice{Module: "example.org/none", Version: "v0.1.0", Dir: "sub", Files: []string{"/n/sub/LICENSE"}}
	err := licenses.Check([]licenses.Notice{ok, gpl, none})
	if err == nil {
		t.Fatal("Check accepted GPL and an unidentified licence")
	}
	for _, want := range []string{"example.org/gpl@v1.0.0: GPL is not an accepted licence", "example.org/none@v0.1.0 (sub): cannot identify the licence of /n/sub/LICENSE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q does not say %q", err, want)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Errorf("Check error: want one error per refusal, got %v", err)
	}
}
