package main_test

import (
	"context"
	"errors"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// module is this repository's module path.
const module = "github.com/adhocd/adhocd"

// TestLinksNoServer keeps adhocctl and the adhoc package (the XEP-0050
// engine and requester adhocctl is built on) free of the server: a terminal
// client should not link a database, and an embedder using adhoc alone
// should not get the server's storage with it. It asks `go list -deps` for
// what each one links and fails on go.etcd.io/bbolt, or on any package of
// this module beyond the few each is allowed: adhoc may use canonjid; adhocctl
// may also use modules/admin/nodes, the leaf package of the admin command
// names (not modules/admin, which is the server's module). The failure names
// the packages that import the offending one.
func TestLinksNoServer(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	for _, tc := range []struct {
		pkg     string
		allowed []string
	}{
		{module + "/adhoc", []string{module + "/adhoc", module + "/canonjid"}},
		{module + "/cmd/adhocctl", []string{module + "/cmd/adhocctl", module + "/adhoc", module + "/canonjid", module + "/modules/admin/nodes"}},
	} {
		t.Run(strings.TrimPrefix(tc.pkg, module+"/"), func(t *testing.T) {
			imports := listDeps(t, goBin, tc.pkg)
			for _, dep := range slices.Sorted(maps.Keys(imports)) {
				ours := dep == module || strings.HasPrefix(dep, module+"/")
				bolt := dep == "go.etcd.io/bbolt" || strings.HasPrefix(dep, "go.etcd.io/bbolt/")
				if bolt || ours && !slices.Contains(tc.allowed, dep) {
					t.Errorf("%s links %s (imported by %s)", tc.pkg, dep, strings.Join(importers(imports, dep), ", "))
				}
			}
		})
	}
}

// TestCoreImportsNoModule keeps the direction of the house (docs/architecture.md):
// the core (server, router, c2s) and the foundations below it link no
// feature module, only the module API (package modules), so that
// cmd/adhocd, the composition root, chooses the modules; c2s links neither
// the router nor the server, the router not the server; and the
// foundations (the wire codec, config, storage, account operations, SASL)
// link nothing of the core, so that tools and other programs can use them
// alone.
func TestCoreImportsNoModule(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	// Each package, with the packages of this module it must not link
	// beyond every feature module and command.
	for pkg, also := range map[string][]string{
		"server": nil,
		// The router gets its streams through c2s's interfaces; the
		// streams get the router through theirs.
		"router": {"server"},
		"c2s":    {"server", "router", "modules"},
		// Federation is the router's Remote and reaches it through s2s.Host.
		"s2s":    {"server", "router", "modules", "c2s"},
		"wire":   {"server", "router", "c2s", "modules"},
		"config": {"server", "router", "c2s"}, "storage": {"server", "router", "c2s"},
		"account": {"server", "router", "c2s"}, "auth": {"server", "router", "c2s"},
		"tlscert": {"server", "router", "c2s"}, "rosterxml": {"server", "router", "c2s"},
	} {
		forbidden := func(dep string) bool {
			if strings.HasPrefix(dep, module+"/modules/") || strings.HasPrefix(dep, module+"/cmd/") {
				return true
			}
			return slices.Contains(also, strings.TrimPrefix(dep, module+"/"))
		}
		t.Run(pkg, func(t *testing.T) {
			imports := listDeps(t, goBin, module+"/"+pkg)
			for _, dep := range slices.Sorted(maps.Keys(imports)) {
				if forbidden(dep) {
					t.Errorf("%s links %s (imported by %s)", pkg, dep, strings.Join(importers(imports, dep), ", "))
				}
			}
		})
	}
}

// listDeps returns every package pkg links (itself included), each with the
// packages it imports, as `go list -deps` reports them for this platform.
func listDeps(t *testing.T, goBin, pkg string) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pkg)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			deps[f[0]] = f[1:]
		}
	}
	if _, ok := deps[pkg]; !ok {
		t.Fatalf("go list -deps %s did not list the package itself:\n%s", pkg, out)
	}
	return deps
}

// importers returns the packages in deps that import dep, sorted.
func importers(deps map[string][]string, dep string) []string {
	var out []string
	for p, imps := range deps {
		if slices.Contains(imps, dep) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
