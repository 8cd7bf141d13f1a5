package interop_test

// This file is the harness that runs Prosody 0.12 and ejabberd 23.01
// (Debian 12's packages, installed by bench/peers.sh install) as the
// federation peers of the s2s interop tests (docs/design-federation.md §9),
// and the tests that prove it with the two peers alone, before adhocd speaks
// s2s: TestS2SPeerProsodyStarts, TestS2SPeerEjabberdStarts (a slixmpp login
// and the server's disco#info), TestS2SPeersFederate (a chat message each way
// and disco#info across the peers' own s2s streams, with dialback, with SASL
// EXTERNAL, and with static host maps) and TestS2SPeerHostsBlock. They need
// root (each daemon runs as its package's system user, and /etc/hosts is
// edited) and skip without it, or fail under CI=true. Serial: the peers take
// fixed addresses (127.0.0.2 and 127.0.0.3, ports 5222 and 5269).
//
// What was found out building it (Prosody 0.12.3-1+deb12u1 with lua-unbound
// 1.0.0-2; ejabberd 23.01-1 with erlang-p1-xmpp 1.6.1; Erlang/OTP 25):
//
//   - Prosody resolves through libunbound once lua-unbound is installed
//     (util/dependencies.lua makes net.unbound the net.adns). Its
//     'unbound' table is lunbound.new()'s options: forward =
//     "127.0.0.1@PORT", resolvconf = false and hoststxt = false keep every
//     question on the stub. The design's trusted = false is an error:
//     lunbound takes 'trusted' as trust anchors ("'trusted' must be string
//     or array") and Prosody's resolver would not start. With no trust
//     anchor nothing is validated: the stub's unsigned answers are
//     "insecure", never "bogus".
//   - libunbound serves "test." as a default local zone (RFC 6761): every
//     .test name is NXDOMAIN and no question leaves. options = {
//     ["local-zone:"] = "test. transparent" } lets them through to the stub;
//     "test. nodefault" set the same way has no effect.
//   - Prosody asks _xmpps-server._tcp (XEP-0368) and _xmpp-server._tcp SRV,
//     then A and AAAA of the target, all of them seen in the stub's log. The
//     static host map (design §11's fallback) is hoststxt = DIR/hosts:
//     libunbound answers A/AAAA from it and never asks the stub; SRV is
//     still asked (NXDOMAIN, then the domain on 5269).
//   - ejabberd asks SRV through inet_res:getbyname (xmpp_stream_out) and
//     looks the targets up with net:getaddrinfo, which is libc: /etc/hosts,
//     then the machine's DNS for a name it lacks. So ejabberd's A lookups go
//     to the /etc/hosts block (peerOptions.Hosts), never to the stub.
//   - In the VM's inetrc, {resolv_conf, ""} resets the name servers: it must
//     come before {nameserver, IP, Port}, or inet_res has none at all. With
//     it, inet_res reads nothing from /etc/resolv.conf. inet_res asks each
//     NXDOMAIN SRV name twice.
//   - ejabberd's s2s_in asks for the client certificate even without
//     s2s_cafile ("Failed inbound s2s EXTERNAL authentication ...: unable to
//     verify the first certificate", then dialback). With s2s_cafile set
//     (and Prosody trusting the CA, s2s_secure_auth = true) the two
//     authenticate each other with SASL EXTERNAL both ways (design §11's
//     open question). Without the CA, each falls back to dialback after a
//     failed EXTERNAL attempt. The subtests assert the peers' log lines for
//     each way.
//   - The instance folder is not under t.TempDir: the test's temporary root
//     is root's, mode 0700, and the system users cannot enter it.
//   - Start times here: Prosody about 0.3 s to a working c2s login, ejabberd
//     about 2.5 s (the node, two ejabberdctl calls of about 0.5 s each);
//     SIGTERM stops either within a second.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/adhocd/adhocd/s2s/s2stest"
	"github.com/adhocd/adhocd/servertest"
)

// The peers' fixed addresses (docs/design-federation.md §9): each on a
// loopback address of its own, on the standard ports, so that neither needs
// an SRV record with a port to be reached and adhocd can have 127.0.0.1.
const (
	prosodyDomain  = "prosody.test"
	prosodyAddr    = "127.0.0.2"
	ejabberdDomain = "ejabberd.test"
	ejabberdAddr   = "127.0.0.3"
	peerC2SPort    = 5222
	peerS2SPort    = 5269
)

const (
	// peerStartTimeout bounds a peer's start, from writing its folder to
	// the first c2s login that works.
	peerStartTimeout = 40 * time.Second
	// peerStopTimeout is how long a peer has to stop after SIGTERM before
	// it gets SIGKILL.
	peerStopTimeout = 30 * time.Second
	// peerCtlTimeout bounds one prosodyctl or ejabberdctl call.
	peerCtlTimeout = 30 * time.Second
)

// peerAuth is how a peer authenticates the servers it federates with.
type peerAuth int

const (
	// authDialback: XEP-0220 dialback is accepted from a server whose
	// certificate does not verify (Prosody: s2s_secure_auth = false), and
	// the peer knows no CA of the test (the system's CAs only), so SASL
	// EXTERNAL never succeeds and dialback is what is used.
	authDialback peerAuth = iota
	// authExternal: the peer trusts the test CA for server certificates
	// (Prosody: ssl.cafile and s2s_secure_auth = true; ejabberd:
	// s2s_cafile), so a server with a certificate of that CA for its
	// domain authenticates with SASL EXTERNAL (RFC 6120 §13.7, XEP-0178).
	authExternal
)

// peerOptions say how a federation peer is set up. The zero value is a
// dialback peer on its default domain and address, with a certificate of a
// CA of its own, an empty DNS stub of its own and no accounts (at least
// one account is needed: the readiness check logs in with the first).
type peerOptions struct {
	// Domain is the peer's one virtual host; prosody.test or
	// ejabberd.test when empty.
	Domain string
	// Addr is the loopback address it listens on; 127.0.0.2 (Prosody) or
	// 127.0.0.3 (ejabberd) when empty.
	Addr string
	// Auth is dialback or EXTERNAL.
	Auth peerAuth
	// CA issues the peer's certificate (a DNS-ID of Domain, serverAuth and
	// clientAuth) and is the CA it trusts with authExternal; a new one
	// when nil.
	CA *s2stest.CA
	// SelfSigned makes the certificate self-signed instead (dialback
	// cases).
	SelfSigned bool
	// DNS is the stub every DNS question of the peer goes to (Prosody:
	// libunbound's forwarder; ejabberd: inet_res's only name server). A
	// stub of the peer's own, which knows no name, when nil: nothing ever
	// reaches the machine's resolver.
	DNS *s2stest.DNS
	// Hosts is a static map of host names to IP addresses: for Prosody
	// a hosts file of its own that libunbound answers A/AAAA questions
	// from (SRV questions still go to DNS), for ejabberd lines in the
	// /etc/hosts block (hostsBlock), which is where its A/AAAA lookups
	// go (libc's getaddrinfo).
	Hosts map[string]string
	// Users are the accounts registered before the peer starts, name to
	// password.
	Users map[string]string
}

// peerKind is what differs between the two servers' packages.
type peerKind struct {
	name    string // "prosody" or "ejabberd"
	sysUser string // the package's system user the daemon runs as
	pkg     string // the Debian package
	program string // the command that must be on PATH
	domain  string
	addr    string
}

var (
	prosodyKind  = peerKind{"prosody", "prosody", "prosody", "prosody", prosodyDomain, prosodyAddr}
	ejabberdKind = peerKind{"ejabberd", "ejabberd", "ejabberd", "ejabberdctl", ejabberdDomain, ejabberdAddr}
)

// peer is a running Prosody or ejabberd of a test.
type peer struct {
	t      *testing.T
	kind   peerKind
	domain string
	addr   string
	// dir is the private instance folder, owned by the system user.
	dir string
	// caFile is the PEM file a client trusts alone to check the peer's
	// certificate: the CA's certificate, or the self-signed certificate.
	caFile string
	// users are the registered accounts.
	users map[string]string
	// logs are the files the daemon logs to.
	logs []string

	uid, gid int
	env      []string
	cmd      *exec.Cmd
	output   servertest.SyncBuffer // the daemon's stdout and stderr
	exited   chan struct{}
	waitErr  error
	// pidFile, when set, holds the PID to signal (ejabberd's beam.smp);
	// otherwise it is the child's.
	pidFile string
}

// requirePeer skips the test when the peers cannot run here: not root (the
// harness runs each daemon as its package's system user, and edits
// /etc/hosts), or the package missing. Under CI it fails instead.
func requirePeer(t *testing.T, k peerKind) {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "the s2s peers need root (they run as the " + k.sysUser + " user, and /etc/hosts is edited)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	requireProgram(t, k.pkg+" (bash bench/peers.sh install)", k.program)
	if _, err := user.Lookup(k.sysUser); err != nil {
		msg := fmt.Sprintf("the %s system user is missing (%v); install Debian's %s", k.sysUser, err, k.pkg)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// newPeerDNS starts a DNS stub for the test and closes it when the test
// ends.
func newPeerDNS(t *testing.T) *s2stest.DNS {
	t.Helper()
	d, err := s2stest.NewDNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// newPeer checks the requirements, makes the instance folder and the
// certificates and fills in the fields common to both servers.
func newPeer(t *testing.T, k peerKind, o *peerOptions) *peer {
	t.Helper()
	requirePeer(t, k)
	if len(o.Users) == 0 {
		t.Fatalf("start %s: no account to log in with", k.name)
	}
	if o.Domain == "" {
		o.Domain = k.domain
	}
	if o.Addr == "" {
		o.Addr = k.addr
	}
	if o.DNS == nil {
		o.DNS = newPeerDNS(t)
	}
	u, err := user.Lookup(k.sysUser)
	if err != nil {
		t.Fatal(err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("user %s: %v", k.sysUser, err)
	}

	// Not under t.TempDir: its parent is root's, mode 0700, which the
	// system user cannot enter. The name is plain ASCII, as the Lua and
	// YAML strings and ejabberdctl's shell need it.
	dir, err := os.MkdirTemp("", "adhocd-s2s-"+k.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after the daemon has stopped.
	// S2S_KEEP=1 keeps the folder (configuration, logs) for a look.
	t.Cleanup(func() {
		if os.Getenv("S2S_KEEP") != "" {
			t.Logf("kept %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	p := &peer{
		t: t, kind: k, domain: o.Domain, addr: o.Addr, dir: dir,
		users: maps.Clone(o.Users), uid: uid, gid: gid, exited: make(chan struct{}),
		env: []string{
			"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=" + dir,
			"TMPDIR=" + dir,
			"USER=" + k.sysUser,
			"LOGNAME=" + k.sysUser,
			"LANG=C.UTF-8",
		},
	}
	return p
}

// certificate returns the peer's certificate and the PEM a client trusts
// to check it.
func (p *peer) certificate(o peerOptions) (*s2stest.Cert, []byte) {
	p.t.Helper()
	names := s2stest.Options{DNS: []string{p.domain}}
	if o.SelfSigned {
		c, err := s2stest.SelfSigned(names)
		if err != nil {
			p.t.Fatal(err)
		}
		return c, c.CertPEM()
	}
	if o.CA == nil {
		ca, err := s2stest.NewCA("adhocd s2s interop CA for " + p.domain)
		if err != nil {
			p.t.Fatal(err)
		}
		o.CA = ca
	}
	c, err := o.CA.Issue(names)
	if err != nil {
		p.t.Fatal(err)
	}
	return c, o.CA.CertPEM()
}

// writeFile writes a file of the instance folder, owned by the system
// user, with mode perm.
func (p *peer) writeFile(name string, data []byte, perm os.FileMode) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		p.t.Fatal(err)
	}
	for _, f := range []string{filepath.Dir(path), path} {
		if err := os.Chown(f, p.uid, p.gid); err != nil {
			p.t.Fatal(err)
		}
	}
	if err := os.Chmod(path, perm); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// mkdir makes folders of the instance folder, owned by the system user.
func (p *peer) mkdir(names ...string) {
	p.t.Helper()
	for _, n := range names {
		path := filepath.Join(p.dir, n)
		if err := os.MkdirAll(path, 0o750); err != nil {
			p.t.Fatal(err)
		}
		if err := os.Chown(path, p.uid, p.gid); err != nil {
			p.t.Fatal(err)
		}
	}
}

var placeholder = regexp.MustCompile(`@[A-Z][A-Z0-9_]*@`)

// renderTemplate reads testdata/s2s/name and replaces each @KEY@ with
// vars[KEY]; a placeholder left over fails the test.
func renderTemplate(t *testing.T, name string, vars map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "s2s", name))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for k, v := range vars {
		text = strings.ReplaceAll(text, "@"+k+"@", v)
	}
	// Comments may name placeholders ("@...@ line"): only KEY forms count.
	if left := placeholder.FindAllString(text, -1); len(left) > 0 {
		t.Fatalf("%s: placeholders not filled in: %q", name, left)
	}
	return []byte(text)
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	return strconv.Quote(s)
}

// ctl runs a control command (prosodyctl, ejabberdctl) as the system user
// and returns its output.
func (p *peer) ctl(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), peerCtlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	p.asSystemUser(cmd)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w", name, strings.Join(redact(args, p.users), " "), err)
	}
	return string(out), nil
}

// redact hides the accounts' passwords in a command line for an error.
func redact(args []string, users map[string]string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		for _, pw := range users {
			if a == pw {
				out[i] = "<password>"
			}
		}
	}
	return out
}

// asSystemUser makes cmd run as the peer's system user, in a process
// group of its own, in the instance folder, with only the environment the
// peer needs.
func (p *peer) asSystemUser(cmd *exec.Cmd) {
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(p.uid), Gid: uint32(p.gid), Groups: []uint32{}},
		Setpgid:    true,
	}
}

// launch starts the daemon as the system user and has it stopped when the
// test ends.
func (p *peer) launch(name string, args ...string) {
	p.t.Helper()
	p.cmd = exec.Command(name, args...)
	p.asSystemUser(p.cmd)
	p.cmd.Stdout = &p.output
	p.cmd.Stderr = &p.output
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.kind.name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	p.t.Cleanup(func() {
		if p.t.Failed() {
			p.t.Logf("%s (%s) log tail:\n%s", p.kind.name, p.dir, p.logTail(60))
		}
		if err := p.stop(); err != nil {
			p.t.Error(err)
		}
	})
}

// serverPID is the PID to signal: the daemon itself.
func (p *peer) serverPID() int {
	if p.pidFile == "" {
		return p.cmd.Process.Pid
	}
	b, err := os.ReadFile(p.pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return pid
}

// stop sends SIGTERM to the daemon's PID (or, when it is not known yet,
// to its process group) and waits until the child has exited; after
// peerStopTimeout the whole process group gets SIGKILL. Helpers of the
// daemon left in the group (the Erlang VM's inet_gethost, erl_child_setup)
// get a moment to follow, then SIGKILL too.
func (p *peer) stop() error {
	pgid := p.cmd.Process.Pid // Setpgid: the group is the child's PID
	defer reapGroup(pgid)
	select {
	case <-p.exited:
		return nil
	default:
	}
	if pid := p.serverPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	} else {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(peerStopTimeout):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still running after SIGKILL", p.kind.name, pgid)
	}
	return fmt.Errorf("%s did not stop within %v of SIGTERM: killed", p.kind.name, peerStopTimeout)
}

// reapGroup waits up to 5 s until the process group pgid (the peer's, of
// which the leader has exited) is empty, then sends SIGKILL to whatever is
// left of it.
func reapGroup(pgid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// running reports an error when the daemon has exited.
func (p *peer) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v", p.kind.name, p.waitErr)
	default:
		return nil
	}
}

// fail fails the test with the peer's log tail.
func (p *peer) fail(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s: %s\n%s", p.kind.name, fmt.Sprintf(format, args...), p.logTail(40))
}

// logTail returns the last n lines of each log file of the peer, and of
// what the daemon printed.
func (p *peer) logTail(n int) string {
	var b strings.Builder
	tail := func(name, text string) {
		if text == "" {
			return
		}
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "---- tail of %s\n%s\n", name, strings.Join(lines, "\n"))
	}
	for _, f := range p.logs {
		data, _ := os.ReadFile(f)
		tail(f, string(data))
	}
	tail(p.kind.name+"'s output", p.output.String())
	return b.String()
}

// log returns the peer's log files' contents so far.
func (p *peer) log() string {
	var b strings.Builder
	for _, f := range p.logs {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// logLine returns the first line of the peer's logs that contains every
// one of parts.
func (p *peer) logLine(parts ...string) (string, bool) {
	for _, line := range strings.Split(p.log(), "\n") {
		if !slices.ContainsFunc(parts, func(part string) bool { return !strings.Contains(line, part) }) {
			return line, true
		}
	}
	return "", false
}

// waitLogLine waits until logLine finds a line, at most timeout: a peer
// may log an outcome a moment after the stanza it let through.
func (p *peer) waitLogLine(timeout time.Duration, parts ...string) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if line, ok := p.logLine(parts...); ok || time.Now().After(deadline) {
			return line, ok
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jid is the bare JID of the account name.
func (p *peer) jid(name string) string {
	return name + "@" + p.domain
}

// c2sAddr is the address of the c2s listener.
func (p *peer) c2sAddr() string {
	return net.JoinHostPort(p.addr, strconv.Itoa(peerC2SPort))
}

// clientArgs are the flags of a slixmpp script (common.py) that logs in
// as the account name: the server's address, the certificate to trust,
// the JID and the password.
func (p *peer) clientArgs(name string) []string {
	return []string{
		"--host", p.addr, "--port", strconv.Itoa(peerC2SPort), "--cafile", p.caFile,
		"--jid", p.jid(name), "--password", p.users[name],
	}
}

// publish puts the peer in the DNS stub as a domain served as RFC 6120
// §3.2.1 says: _xmpp-server._tcp.<domain> SRV to <domain>:5269, and the
// domain's A record.
func (p *peer) publish(d *s2stest.DNS) {
	d.SetA(p.domain, netip.MustParseAddr(p.addr))
	d.SetSRV("_xmpp-server._tcp."+p.domain, []s2stest.SRV{{Target: p.domain, Port: peerS2SPort, Priority: 0, Weight: 0}})
}

// waitReady waits until the first account can log in over c2s (STARTTLS,
// the certificate checked, SASL PLAIN), at most until deadline.
func (p *peer) waitReady(deadline time.Time) {
	p.t.Helper()
	roots := x509.NewCertPool()
	pemData, err := os.ReadFile(p.caFile)
	if err != nil || !roots.AppendCertsFromPEM(pemData) {
		p.t.Fatalf("read %s: %v", p.caFile, err)
	}
	name := slices.Sorted(maps.Keys(p.users))[0]
	var last error
	for time.Now().Before(deadline) {
		if err := p.running(); err != nil {
			p.fail("exited during start-up: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		last = c2sLogin(ctx, p.c2sAddr(), p.domain, name, p.users[name], roots)
		cancel()
		if last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.fail("no c2s login as %s on %s within %v: %v", p.jid(name), p.c2sAddr(), peerStartTimeout, last)
}

// startProsody starts Prosody 0.12 as the prosody user with the
// configuration of testdata/s2s/prosody.cfg.lua.in, the accounts
// registered, and returns once a c2s login works. It is stopped when the
// test ends.
func startProsody(t *testing.T, o peerOptions) *peer {
	t.Helper()
	begin := time.Now()
	p := newPeer(t, prosodyKind, &o)
	cert, trust := p.certificate(o)
	certPEM, keyPEM := cert.CertPEM(), mustKeyPEM(t, cert)
	p.mkdir("data", "certs")
	p.writeFile("certs/"+p.domain+".crt", certPEM, 0o644)
	p.writeFile("certs/"+p.domain+".key", keyPEM, 0o600)
	p.caFile = p.writeFile("trust.pem", trust, 0o644)

	ssl := "-- ssl: not set (dialback): the system's CAs, which know nothing of the test CA"
	secure := "false"
	if o.Auth == authExternal {
		ssl = "ssl = { cafile = " + luaString(p.writeFile("ca.pem", trust, 0o644)) + "; }"
		secure = "true"
	}
	hoststxt := "false"
	if len(o.Hosts) > 0 {
		var b strings.Builder
		for _, name := range slices.Sorted(maps.Keys(o.Hosts)) {
			fmt.Fprintf(&b, "%s %s\n", o.Hosts[name], name)
		}
		hoststxt = luaString(p.writeFile("hosts", []byte(b.String()), 0o644))
	}
	dns := o.DNS.AddrPort()
	cfg := p.writeFile("prosody.cfg.lua", renderTemplate(t, "prosody.cfg.lua.in", map[string]string{
		"DIR":             p.dir,
		"DOMAIN":          p.domain,
		"ADDR":            p.addr,
		"C2S_PORT":        strconv.Itoa(peerC2SPort),
		"S2S_PORT":        strconv.Itoa(peerS2SPort),
		"S2S_SECURE_AUTH": secure,
		"SSL":             ssl,
		"DNS_FORWARD":     fmt.Sprintf("%s@%d", dns.Addr(), dns.Port()),
		"HOSTSTXT":        hoststxt,
	}), 0o640)
	p.logs = []string{filepath.Join(p.dir, "prosody.log")}

	// Offline, in the data store, before the server starts.
	for _, name := range slices.Sorted(maps.Keys(o.Users)) {
		if out, err := p.ctl("prosodyctl", "--config", cfg, "register", name, p.domain, o.Users[name]); err != nil {
			t.Fatalf("register %s: %v\n%s", p.jid(name), err, out)
		}
	}
	// -F: in the foreground, so the child is Prosody's lua process.
	p.launch("prosody", "--config", cfg, "-F")
	p.waitReady(begin.Add(peerStartTimeout))
	t.Logf("prosody %s on %s ready in %v (%s)", p.domain, p.addr, time.Since(begin).Round(time.Millisecond), p.dir)
	return p
}

// startEjabberd starts ejabberd 23.01 as the ejabberd user with the
// configuration of testdata/s2s/ejabberd.yml.in, registers the accounts
// and returns once a c2s login works. It is stopped when the test ends.
func startEjabberd(t *testing.T, o peerOptions) *peer {
	t.Helper()
	begin := time.Now()
	p := newPeer(t, ejabberdKind, &o)
	cert, trust := p.certificate(o)
	p.mkdir("spool", "logs", "contrib/conf")
	p.writeFile(p.domain+".pem", append(cert.CertPEM(), mustKeyPEM(t, cert)...), 0o600)
	p.caFile = p.writeFile("trust.pem", trust, 0o644)
	cafile := "# s2s_cafile: not set (dialback): the system's CAs, which know nothing of the test CA"
	if o.Auth == authExternal {
		cafile = "s2s_cafile: " + strconv.Quote(p.writeFile("ca.pem", trust, 0o644))
	}
	if len(o.Hosts) > 0 {
		var lines []string
		for _, name := range slices.Sorted(maps.Keys(o.Hosts)) {
			lines = append(lines, o.Hosts[name]+" "+name)
		}
		hostsBlock(t, lines...)
	}

	dist := freeLoopbackPort(t)
	p.writeFile("ejabberd.yml", renderTemplate(t, "ejabberd.yml.in", map[string]string{
		"DIR":        p.dir,
		"DOMAIN":     p.domain,
		"ADDR":       p.addr,
		"C2S_PORT":   strconv.Itoa(peerC2SPort),
		"S2S_PORT":   strconv.Itoa(peerS2SPort),
		"S2S_CAFILE": cafile,
	}), 0o640)
	p.writeFile("ejabberdctl.cfg", renderTemplate(t, "ejabberdctl.cfg.in", map[string]string{
		"DIR":       p.dir,
		"NODE":      fmt.Sprintf("s2speer%d@localhost", dist),
		"DIST_PORT": strconv.Itoa(dist),
		"COOKIE":    randomHex(t, 16),
	}), 0o600)
	dns := o.DNS.AddrPort()
	ip := dns.Addr().As4()
	p.writeFile("inetrc", renderTemplate(t, "inetrc.in", map[string]string{
		"DNS_IP":   fmt.Sprintf("{%d,%d,%d,%d}", ip[0], ip[1], ip[2], ip[3]),
		"DNS_PORT": strconv.Itoa(int(dns.Port())),
	}), 0o644)
	p.logs = []string{filepath.Join(p.dir, "logs", "ejabberd.log"), filepath.Join(p.dir, "logs", "error.log")}
	p.pidFile = filepath.Join(p.dir, "ejabberd.pid")

	// 'foreground': the node runs as the child (through the ejabberdctl
	// script), not detached, so its exit is seen; ejabberd writes the
	// beam.smp PID to EJABBERD_PID_PATH, which is what stop signals.
	p.launch("ejabberdctl", p.ejabberdctlArgs("foreground")...)
	deadline := begin.Add(peerStartTimeout)
	var last error
	for {
		if err := p.running(); err != nil {
			p.fail("exited during start-up: %v", err)
		}
		if p.serverPID() > 0 {
			if _, last = p.ctl("ejabberdctl", p.ejabberdctlArgs("status")...); last == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			p.fail("not up within %v: %v", peerStartTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// In the running node: Mnesia lives in it.
	for _, name := range slices.Sorted(maps.Keys(o.Users)) {
		if out, err := p.ctl("ejabberdctl", p.ejabberdctlArgs("register", name, p.domain, o.Users[name])...); err != nil {
			p.fail("register %s: %v\n%s", p.jid(name), err, out)
		}
	}
	p.waitReady(deadline)
	t.Logf("ejabberd %s on %s ready in %v (%s)", p.domain, p.addr, time.Since(begin).Round(time.Millisecond), p.dir)
	return p
}

// ejabberdctlArgs is ejabberdctl's command line for this instance's
// private files, then args.
func (p *peer) ejabberdctlArgs(args ...string) []string {
	return append([]string{
		"--config-dir", p.dir,
		"--config", filepath.Join(p.dir, "ejabberd.yml"),
		"--ctl-config", filepath.Join(p.dir, "ejabberdctl.cfg"),
		"--spool", filepath.Join(p.dir, "spool"),
		"--logs", filepath.Join(p.dir, "logs"),
	}, args...)
}

func mustKeyPEM(t *testing.T, c *s2stest.Cert) []byte {
	t.Helper()
	k, err := c.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// freeLoopbackPort returns a TCP port of 127.0.0.1 that was free a moment
// ago (ejabberd's Erlang distribution port).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// c2sFeatures are the parts of <stream:features/> the login check reads.
type c2sFeatures struct {
	StartTLS   *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	Mechanisms struct {
		Mechanism []string `xml:"mechanism"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms"`
}

const nsStreams = "http://etherx.jabber.org/streams"

// c2sLogin logs in to a server's c2s listener at addr as user@domain the
// way RFC 6120 says a client does: stream header, STARTTLS with the
// certificate checked against roots for domain, a new stream, SASL PLAIN
// (RFC 4616). It returns nil on <success/>.
func c2sLogin(ctx context.Context, addr, domain, user, password string, roots *x509.CertPool) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	f, dec, err := openClientStream(conn, domain)
	if err != nil {
		return err
	}
	if f.StartTLS == nil {
		return errors.New("no STARTTLS offered")
	}
	if _, err := io.WriteString(conn, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
		return err
	}
	if se, err := nextStart(dec); err != nil {
		return err
	} else if se.Name.Local != "proceed" {
		return fmt.Errorf("STARTTLS answered with <%s/>", se.Name.Local)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: domain, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	f, dec, err = openClientStream(tc, domain)
	if err != nil {
		return err
	}
	if !slices.Contains(f.Mechanisms.Mechanism, "PLAIN") {
		return fmt.Errorf("no SASL PLAIN offered (%q)", f.Mechanisms.Mechanism)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if _, err := io.WriteString(tc, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"+auth+"</auth>"); err != nil {
		return err
	}
	se, err := nextStart(dec)
	if err != nil {
		return err
	}
	_, _ = io.WriteString(tc, "</stream:stream>")
	if se.Name.Local != "success" {
		var failure struct {
			Inner []byte `xml:",innerxml"`
		}
		_ = dec.DecodeElement(&failure, &se)
		return fmt.Errorf("SASL PLAIN: <%s>%s", se.Name.Local, failure.Inner)
	}
	return nil
}

// openClientStream sends a client stream header to domain over rw and
// reads the response header and the features.
func openClientStream(rw io.ReadWriter, domain string) (c2sFeatures, *xml.Decoder, error) {
	var f c2sFeatures
	if _, err := fmt.Fprintf(rw, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='%s' to='%s' version='1.0'>", nsStreams, domain); err != nil {
		return f, nil, err
	}
	dec := xml.NewDecoder(rw)
	se, err := nextStart(dec)
	if err != nil {
		return f, nil, err
	}
	if se.Name.Space != nsStreams || se.Name.Local != "stream" {
		return f, nil, fmt.Errorf("got <%s> instead of a stream header", se.Name.Local)
	}
	if se, err = nextStart(dec); err != nil {
		return f, nil, err
	}
	if se.Name.Space != nsStreams || se.Name.Local != "features" {
		var inner struct {
			Inner []byte `xml:",innerxml"`
		}
		_ = dec.DecodeElement(&inner, &se)
		return f, nil, fmt.Errorf("got <%s>%s instead of stream features", se.Name.Local, inner.Inner)
	}
	return f, dec, dec.DecodeElement(&f, &se)
}

// nextStart returns the next start element.
func nextStart(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, nil
		}
	}
}

// The /etc/hosts block. ejabberd's A/AAAA lookups go through libc
// (net:getaddrinfo), so the names it must reach are written to /etc/hosts,
// in a block of this process's:
//
//	# adhocd-interop <pid> begin
//	127.0.0.2 prosody.test
//	# adhocd-interop <pid> end
//
// Every change happens under an flock of hostsLockFile (other test
// binaries running at the same time do the same) and edits the file in
// place, truncated and written again: a container's bind-mounted /etc/hosts
// cannot be replaced by a rename. Blocks of processes that no longer exist
// (a test binary killed before its cleanup) are removed whenever the file
// is written.
const hostsFile = "/etc/hosts"

var hostsLockFile = filepath.Join(os.TempDir(), "adhocd-interop-hosts.lock")

// hostsLines are this process's lines, by the test that added them; the
// block holds them all.
var hostsLines = struct {
	sync.Mutex
	next int
	by   map[int][]string
}{by: map[int][]string{}}

// hostsBlock adds lines to this process's block of /etc/hosts until the
// test ends.
func hostsBlock(t *testing.T, lines ...string) {
	t.Helper()
	hostsLines.Lock()
	id := hostsLines.next
	hostsLines.next++
	hostsLines.by[id] = lines
	err := rewriteHosts(hostsFile, hostsLockFile, os.Getpid(), ourHostsLines())
	hostsLines.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hostsLines.Lock()
		defer hostsLines.Unlock()
		delete(hostsLines.by, id)
		if err := rewriteHosts(hostsFile, hostsLockFile, os.Getpid(), ourHostsLines()); err != nil {
			t.Error(err)
		}
	})
}

// ourHostsLines are the lines of every live hostsBlock, in the order they
// were added. hostsLines must be locked.
func ourHostsLines() []string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(hostsLines.by)) {
		out = append(out, hostsLines.by[id]...)
	}
	return out
}

var hostsMarker = regexp.MustCompile(`^# adhocd-interop ([0-9]+) (begin|end)$`)

// rewriteHosts sets the block of process pid in the hosts file path to
// lines (no block when there are none), and drops the blocks of processes
// that are gone, under an flock of lockPath.
func rewriteHosts(path, lockPath string, pid int, lines []string) error {
	lock, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("hosts lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("hosts lock %s: %w", lockPath, err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("hosts: %w", err)
	}
	defer f.Close()
	old, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("hosts: read %s: %w", path, err)
	}
	updated := editHosts(old, pid, lines, processAlive)
	if bytes.Equal(old, updated) {
		return nil
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("hosts: truncate %s: %w", path, err)
	}
	if _, err := f.WriteAt(updated, 0); err != nil {
		return fmt.Errorf("hosts: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("hosts: sync %s: %w", path, err)
	}
	return nil
}

// editHosts returns the hosts file old with the block of pid replaced by
// lines (appended at the end; removed when lines is empty) and the blocks
// of processes alive says are gone removed. A block whose end marker is
// missing (a write cut short) runs to the end of the file, where blocks are
// always written.
func editHosts(old []byte, pid int, lines []string, alive func(int) bool) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	skipping := -1 // the PID whose block is being dropped
	for sc.Scan() {
		line := sc.Text()
		m := hostsMarker.FindStringSubmatch(strings.TrimSpace(line))
		if skipping >= 0 {
			if m != nil && m[2] == "end" && m[1] == strconv.Itoa(skipping) {
				skipping = -1
			}
			continue
		}
		if m != nil && m[2] == "begin" {
			owner, _ := strconv.Atoi(m[1])
			if owner == pid || !alive(owner) {
				skipping = owner
				continue
			}
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if len(lines) > 0 {
		fmt.Fprintf(&out, "# adhocd-interop %d begin\n", pid)
		for _, l := range lines {
			out.WriteString(l)
			out.WriteByte('\n')
		}
		fmt.Fprintf(&out, "# adhocd-interop %d end\n", pid)
	}
	return out.Bytes()
}

// processAlive reports whether a process with that PID exists.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ---------------------------------------------------------------------------
// Tests of the harness itself: no adhocd s2s needed.

// TestS2SPeerHostsBlock: the /etc/hosts block logic on a copy: the
// process's block is added at the end and replaced, a dead process's stale
// block goes, a live one's stays, and the rest of the file is untouched.
func TestS2SPeerHostsBlock(t *testing.T) {
	const self, live, dead = 100, 200, 300
	alive := func(pid int) bool { return pid == self || pid == live }
	old := "127.0.0.1 localhost\n" +
		"# adhocd-interop 300 begin\n127.0.0.9 stale.test\n# adhocd-interop 300 end\n" +
		"::1 localhost ip6-localhost\n" +
		"# adhocd-interop 200 begin\n127.0.0.8 other.test\n# adhocd-interop 200 end\n"
	got := string(editHosts([]byte(old), self, []string{"127.0.0.2 prosody.test"}, alive))
	want := "127.0.0.1 localhost\n::1 localhost ip6-localhost\n" +
		"# adhocd-interop 200 begin\n127.0.0.8 other.test\n# adhocd-interop 200 end\n" +
		"# adhocd-interop 100 begin\n127.0.0.2 prosody.test\n# adhocd-interop 100 end\n"
	if got != want {
		t.Fatalf("add:\n%s\nwant:\n%s", got, want)
	}
	again := string(editHosts([]byte(got), self, []string{"127.0.0.1 adhocd.test", "127.0.0.2 prosody.test"}, alive))
	if !strings.HasSuffix(again, "# adhocd-interop 100 begin\n127.0.0.1 adhocd.test\n127.0.0.2 prosody.test\n# adhocd-interop 100 end\n") ||
		strings.Count(again, "adhocd-interop 100 begin") != 1 {
		t.Fatalf("replace:\n%s", again)
	}
	if gone := string(editHosts([]byte(again), self, nil, alive)); gone != strings.TrimSuffix(want, "# adhocd-interop 100 begin\n127.0.0.2 prosody.test\n# adhocd-interop 100 end\n") {
		t.Fatalf("remove:\n%s", gone)
	}
	// A block cut short runs to the end of the file.
	cut := "127.0.0.1 localhost\n# adhocd-interop 300 begin\n127.0.0.9 stale.test\n"
	if got := string(editHosts([]byte(cut), self, nil, alive)); got != "127.0.0.1 localhost\n" {
		t.Fatalf("cut block:\n%s", got)
	}

	// On a real file, in place: the same inode afterwards (a rename
	// would change it), under the lock.
	path := tempFile(t, "hosts", []byte(old))
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rewriteHosts(path, filepath.Join(t.TempDir(), "lock"), os.Getpid(), []string{"127.0.0.2 prosody.test"}); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the hosts file was replaced, not edited in place")
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), fmt.Sprintf("# adhocd-interop %d begin\n127.0.0.2 prosody.test\n", os.Getpid())) ||
		strings.Contains(string(b), "stale.test") {
		t.Errorf("hosts file after rewriteHosts:\n%s", b)
	}
}

// runDisco logs in as name on p with s2s_disco.py and returns the lines it
// printed, having checked the login and the server's disco#info answer.
func runDisco(t *testing.T, p *peer, name string) []string {
	t.Helper()
	lines := runScript(t, 60*time.Second, "s2s_disco.py", withDebug(append(p.clientArgs(name), "--tls-max", "1.2", "--timeout", "40"), "S2S_DEBUG")...)
	got := byWord(lines)
	if len(got["MECHANISM"]) != 1 || !strings.HasPrefix(got["MECHANISM"][0], "user SCRAM-") {
		t.Errorf("login: MECHANISM %q, want one SCRAM login", got["MECHANISM"])
	}
	if !slices.Contains(got["IDENTITY"], p.domain+` server/im ""`) && !slices.ContainsFunc(got["IDENTITY"], func(s string) bool {
		return strings.HasPrefix(s, p.domain+" server/im ")
	}) {
		t.Errorf("disco#info of %s: identities %q, want server/im", p.domain, got["IDENTITY"])
	}
	if !slices.Contains(got["FEATURE"], p.domain+" http://jabber.org/protocol/disco#info") {
		t.Errorf("disco#info of %s: features %q, want disco#info", p.domain, got["FEATURE"])
	}
	if !slices.Contains(lines, "OK") {
		t.Error("s2s_disco.py did not print OK")
	}
	return lines
}

// TestS2SPeerProsodyStarts: the harness's Prosody runs as the prosody user
// on 127.0.0.2, with a certificate of the test CA and with a self-signed
// one; a registered slixmpp user logs in over STARTTLS (the certificate
// checked for prosody.test) and the server answers disco#info.
func TestS2SPeerProsodyStarts(t *testing.T) {
	requireSlixmpp(t)
	requirePeer(t, prosodyKind)
	for _, selfSigned := range []bool{false, true} {
		t.Run(map[bool]string{false: "CA", true: "self-signed"}[selfSigned], func(t *testing.T) {
			begin := time.Now()
			p := startProsody(t, peerOptions{SelfSigned: selfSigned, Users: map[string]string{"alice": "pw-" + randomHex(t, 8)}})
			runDisco(t, p, "alice")
			checkRunsAs(t, p)
			t.Logf("took %v", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// TestS2SPeerEjabberdStarts is TestS2SPeerProsodyStarts for ejabberd on
// 127.0.0.3.
func TestS2SPeerEjabberdStarts(t *testing.T) {
	requireSlixmpp(t)
	requirePeer(t, ejabberdKind)
	for _, selfSigned := range []bool{false, true} {
		t.Run(map[bool]string{false: "CA", true: "self-signed"}[selfSigned], func(t *testing.T) {
			begin := time.Now()
			p := startEjabberd(t, peerOptions{SelfSigned: selfSigned, Users: map[string]string{"bob": "pw-" + randomHex(t, 8)}})
			runDisco(t, p, "bob")
			checkRunsAs(t, p)
			t.Logf("took %v", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// checkRunsAs checks that the daemon's process runs as the package's
// system user, not as root.
func checkRunsAs(t *testing.T, p *peer) {
	t.Helper()
	pid := p.serverPID()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("%s pid %d: %v", p.kind.name, pid, err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
			if f[1] != strconv.Itoa(p.uid) {
				t.Errorf("%s (pid %d) runs as uid %s, want %d (%s)", p.kind.name, pid, f[1], p.uid, p.kind.sysUser)
			}
			return
		}
	}
	t.Errorf("%s (pid %d): no Uid line in /proc/%d/status", p.kind.name, pid, pid)
}

// TestS2SPeersFederate proves the DNS and configuration path the adhocd
// interop tests will use, with the two peers alone: Prosody (prosody.test
// on 127.0.0.2) and ejabberd (ejabberd.test on 127.0.0.3), with
// certificates of one test CA, find each other through the test's DNS stub
// (SRV _xmpp-server._tcp, then A: Prosody's through libunbound, ejabberd's
// SRV through inet_res and its A through the /etc/hosts block), and a
// slixmpp user on each exchanges a chat message both ways and asks the
// other server's disco#info. Both streams are STARTTLS. With the peers set
// up for dialback (neither trusts the CA) each authenticates the other with
// XEP-0220 dialback, after a failed EXTERNAL attempt; set up for EXTERNAL
// (both trust it; Prosody requires it) each authenticates the other with
// SASL EXTERNAL, and neither with dialback. The peers' own log lines say
// which.
func TestS2SPeersFederate(t *testing.T) {
	requireSlixmpp(t)
	requirePeer(t, prosodyKind)
	requirePeer(t, ejabberdKind)
	// The lines each outcome is logged with: Prosody at debug level
	// (mod_dialback, mod_saslauth; "Accepting SASL EXTERNAL identity" is
	// at info), ejabberd at info.
	dialback := map[string][][]string{
		prosodyKind.name: {
			// Inbound: ejabberd's db:result, checked with a db:verify.
			{"asking " + ejabberdDomain + " if key", "belongs to them"},
			// Outbound: ejabberd's verdict on Prosody's key.
			{"Received[s2sout_unauthed]: <result", "type='valid'", "jabber:server:dialback", "from='" + ejabberdDomain + "'"},
		},
		ejabberdKind.name: {
			{"Accepted inbound s2s dialback authentication " + prosodyDomain + " -> " + ejabberdDomain},
			{"Accepted outbound s2s dialback authentication " + ejabberdDomain + " -> " + prosodyDomain},
		},
	}
	external := map[string][][]string{
		prosodyKind.name: {
			{"Accepting SASL EXTERNAL identity from " + ejabberdDomain},
			{"SASL EXTERNAL with " + ejabberdDomain + " succeeded"},
		},
		ejabberdKind.name: {
			{"Accepted inbound s2s EXTERNAL authentication " + prosodyDomain + " -> " + ejabberdDomain},
			{"Accepted outbound s2s EXTERNAL authentication " + ejabberdDomain + " -> " + prosodyDomain},
		},
	}
	for _, tc := range []struct {
		name      string
		auth      peerAuth
		static    bool
		want, not map[string][][]string
	}{
		{"dialback", authDialback, false, dialback, external},
		{"EXTERNAL", authExternal, false, external, dialback},
		{"static hosts", authDialback, true, dialback, external},
	} {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			pros, ejab, dns := federate(t, tc.auth, tc.static)
			for _, p := range []*peer{pros, ejab} {
				for _, parts := range tc.want[p.kind.name] {
					if line, ok := p.waitLogLine(5*time.Second, parts...); !ok {
						t.Errorf("%s's log has no line with %q", p.kind.name, parts)
					} else {
						t.Logf("%s: %s", p.kind.name, strings.TrimSpace(line))
					}
				}
				for _, parts := range tc.not[p.kind.name] {
					if line, ok := p.logLine(parts...); ok {
						t.Errorf("%s authenticated the wrong way: %s", p.kind.name, line)
					}
				}
			}
			checkPeerQueries(t, dns, tc.static)
			t.Logf("took %v", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// federate starts Prosody and ejabberd with auth and has a user on each
// chat with the other and ask the other server's disco#info
// (s2s_chat.py); it returns the peers and the DNS stub they use. Both are
// published in the stub (SRV and A), or, with static, neither is: Prosody
// finds ejabberd.test in its static host map (libunbound's hoststxt) and
// ejabberd prosody.test in /etc/hosts, each on the default port after the
// stub's NXDOMAIN for the SRV name (RFC 6120 §3.2.2).
func federate(t *testing.T, auth peerAuth, static bool) (pros, ejab *peer, dns *s2stest.DNS) {
	t.Helper()
	dns = newPeerDNS(t)
	ca, err := s2stest.NewCA("adhocd s2s interop CA")
	if err != nil {
		t.Fatal(err)
	}
	var prosodyHosts map[string]string
	if static {
		prosodyHosts = map[string]string{ejabberdDomain: ejabberdAddr}
	}
	pros = startProsody(t, peerOptions{
		Auth: auth, CA: ca, DNS: dns, Users: map[string]string{"alice": "pw-" + randomHex(t, 8)},
		Hosts: prosodyHosts,
	})
	ejab = startEjabberd(t, peerOptions{
		Auth: auth, CA: ca, DNS: dns, Users: map[string]string{"bob": "pw-" + randomHex(t, 8)},
		// ejabberd looks up SRV targets (and a domain without SRV) with
		// libc, not with the stub.
		Hosts: map[string]string{prosodyDomain: prosodyAddr},
	})
	if !static {
		pros.publish(dns)
		ejab.publish(dns)
	}

	aBody, bBody := randomBody(t), randomBody(t)
	args := []string{
		"--host", pros.addr, "--port", strconv.Itoa(peerC2SPort), "--cafile", pros.caFile,
		"--a-jid", pros.jid("alice"), "--a-password", pros.users["alice"],
		"--b-host", ejab.addr, "--b-port", strconv.Itoa(peerC2SPort), "--b-cafile", ejab.caFile,
		"--b-jid", ejab.jid("bob"), "--b-password", ejab.users["bob"],
		"--a-body", aBody, "--b-body", bBody,
		"--tls-max", "1.2", "--timeout", "45",
	}
	lines := runScript(t, 55*time.Second, "s2s_chat.py", withDebug(args, "S2S_DEBUG")...)
	got := byWord(lines)
	for _, want := range []string{"b " + pros.jid("alice") + " " + aBody, "a " + ejab.jid("bob") + " " + bBody} {
		if !slices.Contains(got["RECEIVED"], want) {
			t.Errorf("RECEIVED %q, want %q", got["RECEIVED"], want)
		}
	}
	for _, want := range []string{"a " + ejab.domain + " ", "b " + pros.domain + " "} {
		if !slices.ContainsFunc(got["DISCO"], func(s string) bool { return strings.HasPrefix(s, want) && !strings.HasSuffix(s, " 0") }) {
			t.Errorf("DISCO %q, want a non-empty answer for %q", got["DISCO"], want)
		}
	}
	if !slices.Contains(lines, "OK") {
		t.Error("s2s_chat.py did not print OK")
	}
	return pros, ejab, dns
}

// checkPeerQueries checks that each peer's questions reached the stub:
// Prosody's (libunbound) about ejabberd.test, ejabberd's (inet_res) about
// prosody.test; with static, that Prosody's A question was answered from
// its host map, not by the stub. The stub's log is shown.
func checkPeerQueries(t *testing.T, dns *s2stest.DNS, static bool) {
	t.Helper()
	for _, q := range []struct {
		who, name string
		typ       dnsmessage.Type
		asked     bool
	}{
		{"prosody", "_xmpp-server._tcp." + ejabberdDomain, dnsmessage.TypeSRV, true},
		{"prosody", ejabberdDomain, dnsmessage.TypeA, !static},
		{"ejabberd", "_xmpp-server._tcp." + prosodyDomain, dnsmessage.TypeSRV, true},
	} {
		switch asked := dns.Asked(q.name, q.typ); {
		case q.asked && !asked:
			t.Errorf("%s never asked the DNS stub for %s %s", q.who, q.name, q.typ)
		case !q.asked && asked:
			t.Errorf("%s asked the DNS stub for %s %s, which its static host map has", q.who, q.name, q.typ)
		}
	}
	var asked []string
	for _, q := range dns.Queries() {
		asked = append(asked, q.String())
	}
	t.Logf("DNS stub queries:\n%s", strings.Join(asked, "\n"))
}
