// Command adhocctl administers an XMPP server from a terminal through
// XEP-0050 ad-hoc commands, the XEP-0133 administration commands above all:
// it logs in as an administrator, lists the commands of the server (or any
// JID) and runs them, filling their forms from --field flags or, in a
// terminal, from prompts. It links neither the server nor its storage: the
// node names come from modules/admin/nodes.
//
//	adhocctl [flags] list [JID]
//	adhocctl [flags] run NODE|SHORTNAME [--field var=value]...
//
// For example:
//
//	adhocctl --jid admin@localhost [--server host:port] list
//	adhocctl --jid admin@localhost run add-user --field accountjid=juliet@localhost --field password=…
//	adhocctl --jid admin@localhost --json run get-user-roster --field accountjids=juliet@localhost
//
// It prints everything a command returns: notes, the fields of result
// forms, multi-item results (<reported/> and <item/>) as tables, and
// embedded jabber:iq:roster queries (XEP-0133 get-user-roster) as a table of
// their items; --json prints the same as one JSON object. adhocctl --help
// lists the flags.
//
// Short names resolve to XEP-0133 nodes (add-user →
// http://jabber.org/protocol/admin#add-user) and to adhocd's operator
// commands (status, sessions, s2s, reload, ping → urn:adhocd:admin#…);
// anything with a colon is taken as a node as it is.
//
// The password comes from --password-file, the ADHOCCTL_PASSWORD
// environment variable, or a prompt; ADHOCCTL_SERVER is the default of
// --server. The server's certificate is checked against --ca FILE (adhocd's
// self-signed one is data/selfsigned-cert.pem) or, with --insecure, not at
// all.
//
// Exit status: 0 when the command completed without an error note, 1 when
// it failed, 2 for wrong usage.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules/admin/nodes"
)

func main() {
	code, err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adhocctl:", err)
		if errors.As(err, new(usageError)) {
			fmt.Fprint(os.Stderr, synopsis, "Run 'adhocctl --help' for the flags and short names.\n")
		}
	}
	os.Exit(code)
}

// synopsis is the first part of the help, also printed after a usage error.
const synopsis = `Usage:
  adhocctl [flags] list [JID]
  adhocctl [flags] run NODE|SHORTNAME [--field var=value]...
`

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// options are the command line's settings.
type options struct {
	jid, server, to, passwordFile, ca string
	insecure, json, interactive       bool
	timeout                           time.Duration
	fields                            fieldFlags
}

// fieldFlags collects repeated --field var=value (repeating a var gives it
// several values).
type fieldFlags adhoc.Values

func (f fieldFlags) String() string { return "" }

func (f fieldFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("--field wants var=value, got %q", s)
	}
	f[k] = append(f[k], v)
	return nil
}

// flagSets returns the global flags and those of run, both silent: run
// prints their errors and the help itself.
func flagSets(o *options) (global, runFlags *flag.FlagSet) {
	fs := flag.NewFlagSet("adhocctl", flag.ContinueOnError)
	fs.StringVar(&o.jid, "jid", "", "the `JID` to log in as (required)")
	fs.StringVar(&o.server, "server", os.Getenv("ADHOCCTL_SERVER"), "`host:port` to connect to (default: $ADHOCCTL_SERVER, else the JID's domain, port 5222)")
	fs.StringVar(&o.to, "to", "", "the `JID` whose commands to list and run (default: the server, the JID's domain)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the password from `FILE` (else $ADHOCCTL_PASSWORD, else a prompt in a terminal)")
	fs.StringVar(&o.ca, "ca", "", "trust the CA (or self-signed certificate) in the PEM `FILE`")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the server's certificate")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.BoolVar(&o.interactive, "interactive", false, "prompt for missing fields even when stdin is not a terminal")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this `duration`")
	rfs := flag.NewFlagSet("adhocctl run", flag.ContinueOnError)
	rfs.Var(o.fields, "field", "a field's value as `var=value` (repeat a var for several values)")
	for _, f := range []*flag.FlagSet{fs, rfs} {
		f.SetOutput(io.Discard)
		f.Usage = func() {}
	}
	return fs, rfs
}

// help writes the whole usage: synopsis, commands, flags, short names,
// environment and exit status.
func help(w io.Writer, global, runFlags *flag.FlagSet) {
	fmt.Fprint(w, synopsis, `
adhocctl logs in to an XMPP server as --jid and lists or runs its XEP-0050
ad-hoc commands (XEP-0133 administration and adhocd's operator commands).

Commands:
  list [JID]   list the commands of JID (default: --to, else the server)
  run NODE|SHORTNAME [--field var=value]...
               run a command at --to (default: the server) to its end and
               print what it returned: notes, forms, tables, rosters; a
               form's fields are taken from --field, the others asked for
               in a terminal (or with --interactive)

Short names: an XEP-0133 command's name (add-user, delete-user,
get-user-roster, get-online-users-num, ...) stands for
http://jabber.org/protocol/admin#NAME; status, sessions, s2s, reload and ping for
urn:adhocd:admin#NAME; a name with a colon is a node as it is.

Flags:
`)
	printFlags(w, global)
	fmt.Fprint(w, "\nFlags of run (after NODE):\n")
	printFlags(w, runFlags)
	fmt.Fprint(w, `
Environment:
  ADHOCCTL_PASSWORD  the password, when --password-file is not given
  ADHOCCTL_SERVER    host:port, the default of --server

Exit status: 0 when the command completed without an error note, 1 when it
failed (an error note, canceled, refused, or no connection), 2 for wrong usage.
`)
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if len(line) > 24 {
			fmt.Fprintf(w, "%s\n%24s  %s", line, "", usage)
		} else {
			fmt.Fprintf(w, "%-24s  %s", line, usage)
		}
		if f.Name == "timeout" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	o := options{fields: fieldFlags{}}
	fs, rfs := flagSets(&o)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help(stdout, fs, rfs)
			return 0, nil
		}
		return 2, usageError{err.Error()}
	}
	rest := fs.Args()
	if len(rest) > 0 && rest[0] == "help" {
		help(stdout, fs, rfs)
		return 0, nil
	}
	if len(rest) == 0 {
		return 2, usageError{"no command given (want list or run)"}
	}
	cmd, rest := rest[0], rest[1:]
	var node string
	switch cmd {
	case "list":
		if len(rest) > 1 {
			return 2, usageError{"list takes at most one JID"}
		}
		if len(rest) == 1 {
			o.to = rest[0]
		}
	case "run":
		if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "-help" || rest[0] == "--help") {
			help(stdout, fs, rfs)
			return 0, nil
		}
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return 2, usageError{"run needs a command node or short name first"}
		}
		node = resolve(rest[0])
		if err := rfs.Parse(rest[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				help(stdout, fs, rfs)
				return 0, nil
			}
			return 2, usageError{err.Error()}
		}
		if rfs.NArg() > 0 {
			return 2, usageError{fmt.Sprintf("run takes one command, then --field flags; %q is extra", rfs.Arg(0))}
		}
	default:
		return 2, usageError{fmt.Sprintf("unknown command %q (want list or run)", cmd)}
	}
	if o.jid == "" {
		return 2, usageError{"--jid is required (the account to log in as)"}
	}

	me, err := jid.Parse(o.jid)
	if err != nil || me.Localpart() == "" {
		return 2, usageError{fmt.Sprintf("--jid %q is not user@domain", o.jid)}
	}
	to := me.Domain()
	if o.to != "" {
		if to, err = jid.Parse(o.to); err != nil {
			return 2, usageError{fmt.Sprintf("%q is not a JID: %v", o.to, err)}
		}
	}
	in := bufio.NewReader(stdin)
	tty := isTerminal(stdin)
	pw, err := password(o, in, tty, stderr)
	if err != nil {
		return 1, err
	}
	tlsCfg, err := tlsConfig(o, me)
	if err != nil {
		return 1, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sess, err := login(ctx, o, me, pw, tlsCfg)
	if err != nil {
		return 1, err
	}
	defer sess.Close()
	req := adhoc.NewRequester(sess)
	if cmd == "list" {
		return list(ctx, req, to, o.json, stdout)
	}
	p := &prompter{in: in, out: stderr, tty: tty, interactive: tty || o.interactive, given: adhoc.Values(o.fields)}
	resp, err := req.Run(ctx, to, node, p.stage)
	if err != nil {
		return 1, err
	}
	return report(resp, o.json, stdout)
}

// resolve turns a short name into a node.
func resolve(name string) string {
	switch {
	case strings.Contains(name, ":"):
		return name
	case nodes.IsOperator(name):
		return nodes.Operator(name)
	}
	return nodes.Admin(name)
}

func password(o options, in *bufio.Reader, tty bool, stderr io.Writer) (string, error) {
	if o.passwordFile != "" {
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if pw := os.Getenv("ADHOCCTL_PASSWORD"); pw != "" {
		return pw, nil
	}
	if !tty && !o.interactive {
		return "", errors.New("no password: use --password-file, ADHOCCTL_PASSWORD, or a terminal")
	}
	fmt.Fprintf(stderr, "Password for %s: ", o.jid)
	return readSecret(in, tty, stderr)
}

// readSecret reads a line without echo on a terminal.
func readSecret(in *bufio.Reader, tty bool, stderr io.Writer) (string, error) {
	if tty {
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		return string(b), err
	}
	line, err := in.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func tlsConfig(o options, me jid.JID) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: me.Domainpart(), MinVersion: tls.VersionTLS12}
	switch {
	case o.insecure:
		cfg.InsecureSkipVerify = true
	case o.ca != "":
		pem, err := os.ReadFile(o.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", o.ca)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// login connects with STARTTLS and SCRAM (channel binding when possible).
func login(ctx context.Context, o options, me jid.JID, pw string, tlsCfg *tls.Config) (*xmpp.Session, error) {
	addr := o.server
	if addr == "" {
		addr = net.JoinHostPort(me.Domainpart(), "5222")
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	sess, err := xmpp.NewClientSession(ctx, me, conn,
		xmpp.StartTLS(tlsCfg),
		xmpp.SASL("", pw, sasl.ScramSha256Plus, sasl.ScramSha256, sasl.ScramSha1Plus, sasl.ScramSha1),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("log in as %s: %w", me, err)
	}
	go func() {
		_ = sess.Serve(xmpp.HandlerFunc(func(xmlstream.TokenReadEncoder, *xml.StartElement) error { return nil }))
	}()
	return sess, nil
}
