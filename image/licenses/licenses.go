// Package licenses finds the licences of the third-party code linked into
// adhocd's binaries and writes their notices for the container image.
//
// The image ships static binaries built from other people's modules (BSD,
// MIT, ISC, MPL-2.0 and Apache-2.0); their licences require that their
// notices travel with the binaries. Collect asks the go command which
// packages a build links (go list -deps), finds for each package the
// licence files nearest to it inside its module (a module can carry code
// under another licence in a subfolder, with its own LICENSE), identifies
// each licence by the clauses its text must contain (Identify), and Check
// refuses any licence outside Accepted or that cannot be identified. Write
// copies the files, with an index, into the folder the Dockerfile puts in
// the image (/usr/share/doc/adhocd/third-party). The Go standard library and
// runtime, linked into every binary, are listed too, under "std".
//
// It works offline from the module cache, so CI and the image build run the
// same check (image/notices and TestDependencyLicenses).
package licenses

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Accepted are the SPDX identifiers of the licences adhocd's binaries may
// contain: permissive licences compatible with distributing adhocd under
// Apache-2.0, and MPL-2.0, whose file-level copyleft asks only that the
// covered files' source stay available (they are unmodified modules).
var Accepted = map[string]bool{
	"Apache-2.0":   true,
	"MIT":          true,
	"BSD-2-Clause": true,
	"BSD-3-Clause": true,
	"ISC":          true,
	"MPL-2.0":      true,
}

// Std is the module name under which Collect lists the Go standard library
// and runtime.
const Std = "std"

// Notice is the licence of one folder of a module: the licence files found
// there and the linked packages they cover.
type Notice struct {
	// Module is the module path (Std for the Go distribution).
	Module string
	// Version is the module version (the Go version for Std).
	Version string
	// Dir is the folder of the files, relative to the module root, with
	// forward slashes; "" is the root.
	Dir string
	// Files are the licence and notice files of Dir, absolute paths, sorted.
	Files []string
	// Licenses are the SPDX identifiers found in the licence files, sorted;
	// empty when none could be identified.
	Licenses []string
	// Packages are the linked import paths this notice covers, sorted.
	Packages []string
}

// Path is where the notice's files go under the output folder.
func (n Notice) Path() string { return filepath.FromSlash(pathJoin(n.Module, n.Dir)) }

func pathJoin(a, b string) string {
	if b == "" {
		return a
	}
	return a + "/" + b
}

// licenseFile matches the names of the files that state a licence.
var licenseFile = regexp.MustCompile(`(?i)^(licen[cs]e|copying|unlicense)([-._].*)?$`)

// noticeFile matches the files a licence asks to be carried with it
// (Apache-2.0's NOTICE, the Go projects' PATENTS grant).
var noticeFile = regexp.MustCompile(`(?i)^(notice|patents)([-._].*)?$`)

// goPackage is the part of `go list -json` that Collect reads.
type goPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	Module     *struct {
		Path    string
		Version string
		Main    bool
		Dir     string
		Replace *struct {
			Path    string
			Version string
			Dir     string
		}
	}
}

// Collect lists the packages the go command links for patterns (import
// paths or ./relative patterns), run in the module at dir as the image's
// build does (CGO_ENABLED=0), and returns the notices that cover every
// package outside the main module, the standard library's first. A package
// with no licence file between its folder and its module's root is an
// error.
func Collect(ctx context.Context, dir string, patterns ...string) ([]Notice, error) {
	cmd := exec.CommandContext(ctx, "go", append([]string{"list", "-deps", "-json"}, patterns...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("licenses: go list: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	byDir := map[string]*Notice{}
	var std *Notice
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("licenses: decode go list: %w", err)
		}
		switch {
		case p.Standard:
			if std == nil {
				if std, err = goroot(ctx, dir); err != nil {
					return nil, err
				}
			}
			std.Packages = append(std.Packages, p.ImportPath)
			continue
		case p.Module == nil:
			return nil, fmt.Errorf("licenses: package %s has no module", p.ImportPath)
		case p.Module.Main:
			continue
		}
		mod, ver, root := p.Module.Path, p.Module.Version, p.Module.Dir
		if r := p.Module.Replace; r != nil {
			ver = r.Version
			if r.Dir != "" {
				root = r.Dir
			}
		}
		if root == "" {
			return nil, fmt.Errorf("licenses: module %s@%s is not downloaded (go mod download)", mod, ver)
		}
		ldir, files, err := nearest(root, p.Dir)
		if err != nil {
			return nil, fmt.Errorf("licenses: package %s (%s@%s): %w", p.ImportPath, mod, ver, err)
		}
		n := byDir[ldir]
		if n == nil {
			rel, err := filepath.Rel(root, ldir)
			if err != nil {
				return nil, fmt.Errorf("licenses: %w", err)
			}
			if rel == "." {
				rel = ""
			}
			n = &Notice{Module: mod, Version: ver, Dir: filepath.ToSlash(rel), Files: files}
			if n.Licenses, err = identifyFiles(files); err != nil {
				return nil, err
			}
			byDir[ldir] = n
		}
		n.Packages = append(n.Packages, p.ImportPath)
	}
	var ns []Notice
	for _, n := range byDir {
		ns = append(ns, *n)
	}
	sort.Slice(ns, func(i, j int) bool {
		if ns[i].Module != ns[j].Module {
			return ns[i].Module < ns[j].Module
		}
		return ns[i].Dir < ns[j].Dir
	})
	if std != nil {
		ns = append([]Notice{*std}, ns...)
	}
	for i := range ns {
		slices.Sort(ns[i].Packages)
	}
	return ns, nil
}

// goroot returns the notice of the Go distribution the go command at dir
// builds with: its LICENSE and PATENTS cover the standard library and the
// runtime linked into every binary.
func goroot(ctx context.Context, dir string) (*Notice, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOROOT", "GOVERSION")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("licenses: go env: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("licenses: go env GOROOT GOVERSION: unexpected %q", out)
	}
	files, err := filesIn(lines[0])
	if err != nil {
		return nil, err
	}
	n := &Notice{Module: Std, Version: lines[1], Files: files}
	if n.Licenses, err = identifyFiles(files); err != nil {
		return nil, err
	}
	return n, nil
}

// nearest returns the folder holding the licence files nearest to pkgDir,
// searching upwards to root, and those folder's licence and notice files.
func nearest(root, pkgDir string) (string, []string, error) {
	root, pkgDir = filepath.Clean(root), filepath.Clean(pkgDir)
	if rel, err := filepath.Rel(root, pkgDir); err != nil || strings.HasPrefix(rel, "..") {
		return "", nil, fmt.Errorf("folder %s is outside its module %s", pkgDir, root)
	}
	for d := pkgDir; ; d = filepath.Dir(d) {
		files, err := filesIn(d)
		if err != nil {
			return "", nil, err
		}
		if slices.ContainsFunc(files, func(f string) bool { return licenseFile.MatchString(filepath.Base(f)) }) {
			return d, files, nil
		}
		if d == root {
			return "", nil, fmt.Errorf("no licence file (LICENSE, COPYING) between %s and the module root", pkgDir)
		}
	}
}

// filesIn returns the licence and notice files directly in dir, sorted.
func filesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("licenses: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && (licenseFile.MatchString(e.Name()) || noticeFile.MatchString(e.Name())) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files, nil
}

// identifyFiles identifies the licences stated in files (notice files
// state none).
func identifyFiles(files []string) ([]string, error) {
	set := map[string]bool{}
	for _, f := range files {
		if !licenseFile.MatchString(filepath.Base(f)) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("licenses: %w", err)
		}
		for _, id := range Identify(b) {
			set[id] = true
		}
	}
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Check returns an error naming every notice whose licences could not be
// identified or include one outside Accepted.
func Check(ns []Notice) error {
	var errs []error
	for _, n := range ns {
		where := n.Module + "@" + n.Version
		if n.Dir != "" {
			where += " (" + n.Dir + ")"
		}
		if len(n.Licenses) == 0 {
			errs = append(errs, fmt.Errorf("licenses: %s: cannot identify the licence of %s", where, strings.Join(n.Files, ", ")))
			continue
		}
		for _, id := range n.Licenses {
			if !Accepted[id] {
				errs = append(errs, fmt.Errorf("licenses: %s: %s is not an accepted licence (accepted: %s)", where, id, strings.Join(sortedKeys(Accepted), ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]bool) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// IndexFile is the name of the index Write puts in the output folder.
const IndexFile = "index.tsv"

// Write copies each notice's files to dir/<module>/<folder>/ and writes
// dir/index.tsv: one line per notice with the module, version, licences,
// folder and the packages covered.
func Write(dir string, ns []Notice) error {
	var idx strings.Builder
	idx.WriteString("# Third-party code linked into adhocd and adhocctl, and the licences of each\n")
	idx.WriteString("# (generated by image/notices from go list -deps; std is the Go distribution).\n")
	idx.WriteString("module\tversion\tlicenses\tfiles\tpackages\n")
	for _, n := range ns {
		dst := filepath.Join(dir, n.Path())
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return fmt.Errorf("licenses: %w", err)
		}
		for _, f := range n.Files {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("licenses: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
				return fmt.Errorf("licenses: %w", err)
			}
		}
		pkgs := strings.Join(n.Packages, " ")
		if n.Module == Std {
			pkgs = fmt.Sprintf("the standard library and runtime (%d packages)", len(n.Packages))
		}
		fmt.Fprintf(&idx, "%s\t%s\t%s\t%s\t%s\n", n.Module, n.Version, strings.Join(n.Licenses, " AND "),
			filepath.ToSlash(n.Path()), pkgs)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), []byte(idx.String()), 0o644); err != nil {
		return fmt.Errorf("licenses: %w", err)
	}
	return nil
}
