// Command pgrun runs a command beside a throwaway PostgreSQL server of
// package pgtest, which every test binary the command starts then shares
// (pgtest.PortEnv), and stops the server when the command ends:
//
//	ADHOCD_TEST_BACKEND=postgres go run ./storage/postgres/pgtest/pgrun go test ./...
//
// runs the whole suite on the PostgreSQL backend with one server for all
// its packages rather than one per package. The server is a child of
// pgrun, which the kernel ends with it. pgrun exits with the command's
// status.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgrun COMMAND [ARG...]")
		return 2
	}
	c, err := pgtest.Serve()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgrun:", err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "pgrun: PostgreSQL on 127.0.0.1:%d for %s\n", c.Port, args[0])

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), pgtest.PortEnv+"="+strconv.Itoa(c.Port))
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pgrun:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sig)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "pgrun:", err)
		return 1
	}
}
