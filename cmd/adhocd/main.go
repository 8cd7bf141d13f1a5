// Command adhocd is the adhocd XMPP server and its composition root: it
// loads config.yaml, sets up logging and telemetry (package metrics) and runs
// a server.Server with the default modules (package modules/defaults).
//
//	adhocd [serve] [--config FILE]        run the server until SIGTERM or SIGINT;
//	                                      SIGHUP reloads config.yaml and the certificate
//	adhocd user add     JID [--config FILE]  create an account (password without echo
//	                                         from a terminal, else a line on stdin)
//	adhocd user passwd  JID [--config FILE]  change a password (read the same way)
//	adhocd user disable JID [--config FILE]  refuse an account's logins, keeping its data
//	adhocd user enable  JID [--config FILE]  let a disabled account log in again
//	adhocd user delete  JID [--config FILE]  remove an account, its data and its items
//	                                         in other rosters
//	adhocd user list        [--config FILE]  list the accounts
//	adhocd migrate bolt-to-postgres [--from DIR] [--dsn DSN] [--config FILE]
//	                                         copy the bbolt store (stopped) into PostgreSQL
//	adhocd status           [--config FILE]  print the running server's status report (the
//	                                         status command's figures, through the control
//	                                         socket, whatever the c2s listener's state)
//	adhocd check-config     [--config FILE]  load and validate the configuration and
//	                                         print what the server would listen on
//	adhocd healthcheck      [--config FILE]  exit 0 when the server of that configuration
//	                                         answers an XMPP stream on its c2s port
//	adhocd version, adhocd --version        print the version
//	adhocd help [COMMAND], -h, --help       print this help
//
// Flags may come before or after the arguments. The exit status is 0 on
// success, 1 when the command failed, and 2 for a usage error (an unknown
// command or flag, a missing argument).
//
// The user commands work on the store directly while the server is stopped,
// and through the server's control socket while it runs; both run package
// account's operations, so the rules are the same (a password change, a
// disable and a delete end the account's sessions).
//
// The restart and shutdown admin commands (XEP-0133) stop the server as
// SIGTERM does; a restart then executes the binary again with the same
// arguments, or exits with status 75 if it cannot, for a supervisor.
//
// In containers an administrator can be bootstrapped from the environment:
// ADHOCD_ADMIN_JID and ADHOCD_ADMIN_PASSWORD create that account at start-up
// if it does not exist yet.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/adhocd/adhocd/buildinfo"
)

// The exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(exitStatus(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr), os.Stderr))
}

// exitStatus prints err, if any, and returns the exit status it means.
func exitStatus(err error, stderr io.Writer) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintln(stderr, "adhocd:", err)
		fmt.Fprintln(stderr, "Run 'adhocd help' for usage.")
		return exitUsage
	}
	fmt.Fprintln(stderr, "adhocd:", err)
	return exitError
}

// usageError is a command line adhocd cannot run: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// command is one subcommand.
type command struct {
	name, args, summary string
	run                 func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "[--config FILE]", "run the server (the default command)", serveCmd},
		{"user", "add|passwd|disable|enable|delete|list [JID] [--config FILE]", "manage accounts, with the server running or not", userCmd},
		{"migrate", migrateUsage, "copy a single node's bbolt store into a PostgreSQL database", migrateCmd},
		{"status", "[--config FILE]", "print the running server's status report, through its control socket", statusCmd},
		{"check-config", "[--config FILE]", "load and validate the configuration, print what the server would listen on", checkConfigCmd},
		{"healthcheck", "[--config FILE] [--timeout D]", "exit 0 when the server answers an XMPP stream on its c2s port", healthcheckCmd},
		{"version", "", "print the version", versionCmd},
		{"help", "[COMMAND]", "print this help, or a command's", nil},
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		switch {
		case len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
			return help(stdout, "")
		case len(args) > 0 && (args[0] == "-version" || args[0] == "--version"):
			return versionCmd(nil, stdin, stdout, stderr)
		}
		return serveCmd(args, stdin, stdout, stderr)
	}
	name := args[0]
	if name == "help" {
		topic := ""
		if len(args) > 1 {
			topic = args[1]
		}
		return help(stdout, topic)
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	return usagef("unknown command %q", name)
}

// help prints the commands, or one command's usage.
func help(w io.Writer, topic string) error {
	if topic != "" {
		for _, c := range commands() {
			if c.name == topic {
				fmt.Fprintf(w, "usage: adhocd %s %s\n\n%s\n", c.name, c.args, c.summary)
				return nil
			}
		}
		return usagef("unknown help topic %q", topic)
	}
	fmt.Fprint(w, "adhocd is an XMPP server whose administration runs on XEP-0050 ad-hoc commands.\n\nusage: adhocd [COMMAND] [ARGS] [--config FILE]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nWithout a command, adhocd serves. Flags may come before or after arguments.\n"+
		"--config FILE is the configuration (default config.yaml). Exit status: 0 success, 1 failure, 2 usage.\n"+
		"Documentation: docs/ in the source tree, starting with docs/configuration.md.\n")
	return nil
}

func versionCmd(args []string, _ io.Reader, stdout, _ io.Writer) error {
	if len(args) > 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintf(stdout, "adhocd %s (%s, %s/%s)\n", buildinfo.Version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// parseFlags parses fs's flags wherever they stand among args (Go's flag
// package stops at the first argument) and returns the arguments. -h and
// --help print the command's usage and return flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// newFlags returns a flag set for a command whose usage line is usage, with
// --config.
func newFlags(name, usage string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("adhocd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: adhocd %s %s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs, fs.String("config", "config.yaml", "configuration file")
}
