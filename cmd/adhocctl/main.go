// Command adhocctl administers an XMPP server from a terminal through
// XEP-0050 ad-hoc commands: it logs in as an administrator, lists the
// commands of the server (or any JID) and runs them, filling their forms from
// --field flags or, in a terminal, from prompts.
//
//	adhocctl --jid admin@localhost [--server host:port] list
//	adhocctl --jid admin@localhost run add-user --field accountjid=juliet@localhost --field password=…
//	adhocctl --jid admin@localhost --json run get-online-users-num
//
// Short names resolve to XEP-0133 nodes (add-user →
// http://jabber.org/protocol/admin#add-user) and to adhocd's operator
// commands (status, sessions, reload, ping → urn:adhocd:admin#…); anything
// with a colon is taken as a node as it is.
//
// The password comes from --password-file, the ADHOCCTL_PASSWORD
// environment variable, or a prompt. The server's certificate is checked
// against --ca FILE (adhocd's self-signed one is data/selfsigned-cert.pem) or,
// with --insecure, not at all.
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
	"slices"
	"strings"
	"time"

	"golang.org/x/term"
	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/modules/admin"
)

func main() {
	code, err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "adhocctl:", err)
	}
	os.Exit(code)
}

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

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	o := options{fields: fieldFlags{}}
	fs := flag.NewFlagSet("adhocctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.jid, "jid", "", "the JID to log in as (required)")
	fs.StringVar(&o.server, "server", "", "host:port to connect to (default: the JID's domain, port 5222)")
	fs.StringVar(&o.to, "to", "", "the JID whose commands to use (default: the server)")
	fs.StringVar(&o.passwordFile, "password-file", "", "read the password from this file (else ADHOCCTL_PASSWORD, else a prompt)")
	fs.StringVar(&o.ca, "ca", "", "PEM file of the CA (or self-signed certificate) to trust")
	fs.BoolVar(&o.insecure, "insecure", false, "do not verify the server's certificate")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	fs.BoolVar(&o.interactive, "interactive", false, "prompt for missing fields even when stdin is not a terminal")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	rest := fs.Args()
	if o.jid == "" || len(rest) == 0 {
		fmt.Fprintln(stderr, "usage: adhocctl --jid JID [flags] list | run NODE [--field var=value ...]")
		return 2, nil
	}
	cmd, rest := rest[0], rest[1:]
	var node string
	switch cmd {
	case "list":
		if len(rest) != 0 {
			return 2, usageError{"list takes no arguments"}
		}
	case "run":
		if len(rest) == 0 {
			return 2, usageError{"run needs a command node or short name"}
		}
		node = resolve(rest[0])
		rfs := flag.NewFlagSet("adhocctl run", flag.ContinueOnError)
		rfs.SetOutput(stderr)
		rfs.Var(o.fields, "field", "a field value as var=value (repeat for several values)")
		if err := rfs.Parse(rest[1:]); err != nil {
			return 2, nil
		}
	default:
		return 2, usageError{fmt.Sprintf("unknown command %q (want list or run)", cmd)}
	}

	me, err := jid.Parse(o.jid)
	if err != nil || me.Localpart() == "" {
		return 2, usageError{fmt.Sprintf("--jid %q is not user@domain", o.jid)}
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
	to := me.Domain()
	if o.to != "" {
		if to, err = jid.Parse(o.to); err != nil {
			return 2, usageError{fmt.Sprintf("--to %q: %v", o.to, err)}
		}
	}
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
	case slices.Contains([]string{"status", "sessions", "reload", "ping"}, name):
		return admin.OperatorNode(name)
	}
	return admin.Node(name)
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
