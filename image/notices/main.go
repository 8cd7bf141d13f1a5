// Command notices writes the third-party notices of adhocd's binaries into
// a folder and fails when a dependency's licence is not accepted or cannot
// be identified (package licenses). The Dockerfile's build stage runs it, so
// an image is never built with a licence nobody checked:
//
//	go run ./image/notices -o /out/third-party ./cmd/adhocd ./cmd/adhocctl
//
// It runs the go command in the current folder (the module's root) and
// reads the module cache only: `go mod download` first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/adhocd/adhocd/image/licenses"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "notices:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("notices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "`folder` to write the notices and index.tsv into (created)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		return errors.New("usage: notices -o FOLDER PACKAGE [PACKAGE]")
	}
	ns, err := licenses.Collect(ctx, ".", fs.Args()...)
	if err != nil {
		return err
	}
	if err := licenses.Check(ns); err != nil {
		return err
	}
	if err := licenses.Write(*out, ns); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "notices: %d licences of %s written to %s\n", len(ns), fs.Args(), *out)
	return nil
}
