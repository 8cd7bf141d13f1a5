package redistest_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/cluster/redistest"
)

// do sends one inline command and returns the first line of the answer.
func do(t *testing.T, addr, cmd string) (string, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestServer: the server answers on loopback, keeps nothing across a
// restart on the same port, and is gone after Stop and Kill.
func TestServer(t *testing.T) {
	s := redistest.Start(t)
	if host, _, _ := net.SplitHostPort(s.Addr()); host != "127.0.0.1" {
		t.Fatalf("Addr %q, want 127.0.0.1:port", s.Addr())
	}
	if got, err := do(t, s.Addr(), "SET k v"); err != nil || got != "+OK" {
		t.Fatalf("SET: %q, %v", got, err)
	}
	// No configuration file: the command line's settings hold.
	for _, c := range []struct{ cmd, want string }{
		{"CONFIG GET save", "*2"},
		{"CONFIG GET appendonly", "*2"},
	} {
		if got, err := do(t, s.Addr(), c.cmd); err != nil || got != c.want {
			t.Fatalf("%s: %q, %v", c.cmd, got, err)
		}
	}

	s.Stop()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("the server answers after Stop")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := do(t, s.Addr(), "EXISTS k"); err != nil || got != ":0" {
		t.Fatalf("EXISTS k after a restart: %q, %v (want :0, nothing saved)", got, err)
	}
	if err := s.Start(); err == nil {
		t.Fatal("Start of a running server succeeded")
	}

	s.Kill()
	if _, err := do(t, s.Addr(), "PING"); err == nil {
		t.Fatal("the server answers after Kill")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := do(t, s.Addr(), "PING"); err != nil || got != "+PONG" {
		t.Fatalf("PING after Kill and Start: %q, %v", got, err)
	}
}

// TestTLSPassword: StartWith's server speaks TLS only, with a certificate
// ClientTLS trusts, and wants the password.
func TestTLSPassword(t *testing.T) {
	s := redistest.StartWith(t, redistest.Options{Password: "sesame", TLS: true})
	if got, _ := do(t, s.Addr(), "PING"); got == "+PONG" {
		t.Fatal("the TLS server answered PING over plain TCP")
	}
	conn, err := tls.Dial("tcp", s.Addr(), s.ClientTLS())
	if err != nil {
		t.Fatalf("TLS with ClientTLS: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	rd := bufio.NewReader(conn)
	for _, c := range []struct{ cmd, want string }{
		{"PING", "-NOAUTH Authentication required."},
		{"AUTH wrong", "-WRONGPASS invalid username-password pair or user is disabled."},
		{"AUTH sesame", "+OK"},
		{"PING", "+PONG"},
	} {
		if _, err := conn.Write([]byte(c.cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != c.want {
			t.Fatalf("%s: %q, %v; want %q", c.cmd, line, err, c.want)
		}
	}
	if redistest.Start(t).ClientTLS() != nil {
		t.Fatal("ClientTLS of a plain server is not nil")
	}
}
