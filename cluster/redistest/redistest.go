// Package redistest starts throwaway Redis servers for tests, as
// net/http/httptest starts HTTP servers: Debian's redis-server (package
// redis-server, 7.0 on Debian 12) at /usr/bin/redis-server, as a process of
// the test binary, on a free port of 127.0.0.1, with its working folder in
// a temporary directory of the test. Nothing of the machine's own Redis is
// used: no configuration file (every setting is on the command line), not
// its service, not its port.
//
// The server keeps nothing on disk (no RDB snapshots, no AOF): Stop and
// Start give a test an empty Redis on the same port, as a Redis restart
// without persistence does in production; that is what outage tests want.
//
// The server is a child of the test binary that the kernel kills when the
// binary ends (Linux's parent-death signal, tied to a thread kept for it),
// so that a test binary that panics or times out leaves no server running
// behind it. Redis runs as root without complaint: no user switch.
//
// StartSentinel starts a Redis Sentinel watching such a server, for the
// clients that find their master through Sentinel.
//
// Without the binary a test that needs it is skipped, unless the
// environment variable CI is set: then it fails, because CI must run it.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/internal/childproc"
)

// Binary is Debian's Redis server program.
const Binary = "/usr/bin/redis-server"

// Options are what StartWith may ask of a server beyond Start's.
type Options struct {
	// Password, if not empty, is required of clients (requirepass).
	Password string
	// TLS has the server speak TLS only, with a self-signed certificate
	// for 127.0.0.1 that ClientTLS trusts; clients need no certificate.
	TLS bool
}

// Server is one Redis server (or sentinel) of a test.
type Server struct {
	port     int
	dir      string          // working folder and redis.log
	args     func() []string // redis-server's arguments, for port and dir
	password string
	tls      *tls.Config // a client's, when the server speaks TLS

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of redis-server.
type process = childproc.Process

// Start starts a Redis server for the test alone, stopped at its cleanup.
// It skips the test when redis-server is not installed, or fails it if CI
// is set.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Options{}) }

// StartWith is Start with a password or TLS.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	requireBinary(t)
	s := &Server{dir: t.TempDir(), password: o.Password} // removed after the cleanup below has stopped the server
	var tlsArgs []string
	if o.TLS {
		var err error
		if s.tls, tlsArgs, err = makeCert(s.dir); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	}
	s.args = func() []string {
		port := []string{"--port", strconv.Itoa(s.port)}
		if s.tls != nil {
			port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
		}
		args := append(port,
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", s.dir,
			"--daemonize", "no",
			"--logfile", "", // standard output: the log file
		)
		if s.password != "" {
			args = append(args, "--requirepass", s.password)
		}
		return append(args, tlsArgs...)
	}
	s.first(t)
	return s
}

// ClientTLS returns the TLS configuration that trusts the server's
// certificate (a new copy each call), or nil when it speaks plain TCP.
func (s *Server) ClientTLS() *tls.Config {
	if s.tls == nil {
		return nil
	}
	return s.tls.Clone()
}

// makeCert writes a self-signed certificate for 127.0.0.1 into dir and
// returns the client configuration trusting it and the server's
// arguments that use it.
func makeCert(dir string) (*tls.Config, []string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return cfg, []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no"}, nil
}

func requireBinary(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		msg := fmt.Sprintf("redistest: Redis is not installed (%v); install Debian's redis-server", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// first starts s for the first time, on a free port, and stops it at the
// test's cleanup.
func (s *Server) first(t testing.TB) {
	t.Helper()
	// A free port now may be taken by the time the server binds it: try
	// again on another.
	var err error
	for try := 0; ; try++ {
		if s.port, err = childproc.FreePort(); err == nil {
			err = s.Start()
		}
		if err == nil {
			break
		}
		if try == 4 || !strings.Contains(err.Error(), "in use") {
			t.Fatalf("%v", err)
		}
	}
	t.Cleanup(s.Stop)
}

// StartSentinel starts a Redis Sentinel (redis-server --sentinel, with a
// configuration file of its own in a temporary folder) that watches
// master under the name name, for tests of clients that follow a master
// through Sentinel; it is stopped at the test's cleanup. Its Addr is the
// sentinel's. It notices a master down after a second.
func StartSentinel(t testing.TB, name string, master *Server) *Server {
	t.Helper()
	requireBinary(t)
	s := &Server{dir: t.TempDir()}
	conf := filepath.Join(s.dir, "sentinel.conf")
	s.args = func() []string {
		c := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel resolve-hostnames no\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\n",
			s.port, s.dir, name, master.port, name)
		_ = os.WriteFile(conf, []byte(c), 0o600) // Sentinel rewrites it: start afresh
		return []string{conf, "--sentinel", "--daemonize", "no", "--logfile", ""}
	}
	s.first(t)
	return s
}

// Addr returns the server's address, 127.0.0.1:port; it stays the same
// across Stop and Start.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Start starts the server again after Stop or Kill, on the same port and
// empty (nothing was saved); it returns when the server answers PING.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("redistest: the server is running")
	}
	log, err := childproc.OpenLog(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(Binary, s.args()...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdout, cmd.Stderr = log, log
	p, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	s.proc = p
	if err := p.WaitReady(10*time.Second, 20*time.Millisecond, s.ping); err != nil {
		s.stop(p, syscall.SIGKILL)
		s.proc = nil
		return fmt.Errorf("redistest: redis-server on port %d: %w\n%s", s.port, err, log.Tail())
	}
	return nil
}

// ping sends PING (after AUTH with a password) in Redis's protocol and
// wants +PONG.
func (s *Server) ping() error {
	d := &net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if s.tls != nil {
		conn, err = tls.DialWithDialer(d, "tcp", s.Addr(), s.tls)
	} else {
		conn, err = d.Dial("tcp", s.Addr())
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	rd := bufio.NewReader(conn)
	if s.password != "" {
		if _, err := fmt.Fprintf(conn, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(s.password), s.password); err != nil {
			return err
		}
		if line, err := rd.ReadString('\n'); err != nil {
			return err
		} else if line = strings.TrimSpace(line); line != "+OK" {
			return fmt.Errorf("AUTH answered %q", line)
		}
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimSpace(line); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop shuts the server down (SIGTERM; SIGKILL if it has not exited after
// ten seconds) and returns when it has exited. Nothing is saved: Start
// gives an empty server.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.stop(s.proc, syscall.SIGTERM)
		s.proc = nil
	}
}

// Kill ends the server at once, as a crash would (SIGKILL).
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.stop(s.proc, syscall.SIGKILL)
		s.proc = nil
	}
}

// stop signals the server by its pid and waits for it to exit, killing it
// after ten seconds. The caller holds mu.
func (s *Server) stop(p *process, sig syscall.Signal) { p.Stop(sig, 10*time.Second) }
