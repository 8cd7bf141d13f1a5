package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/storage"
)

// openPTY opens a pseudo-terminal pair: what the user types goes into
// master, the program reads slave as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestPasswordFromTerminalWithoutEcho: typed at a terminal, the password is
// asked twice and never echoed, and it is the one the account gets.
func TestPasswordFromTerminalWithoutEcho(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "user", "add", "carol@localhost", "--config", cfg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	readUntil := func(s string) {
		t.Helper()
		buf := make([]byte, 256)
		for !strings.Contains(screen.String(), s) {
			_ = master.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := master.Read(buf)
			if err != nil {
				t.Fatalf("terminal: %v after %q", err, screen.String())
			}
			screen.Write(buf[:n])
		}
	}
	readUntil("Password: ")
	if _, err := master.WriteString("typed-secret\n"); err != nil {
		t.Fatal(err)
	}
	readUntil("Password again: ")
	if _, err := master.WriteString("typed-secret\n"); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("user add at a terminal: %v\n%s", err, screen.String())
	}
	_ = master.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	rest := make([]byte, 256)
	n, _ := master.Read(rest)
	screen.Write(rest[:n])
	if strings.Contains(screen.String(), "typed-secret") {
		t.Fatalf("the password was echoed: %q", screen.String())
	}
	st, err := storage.Open(filepath.Join(dir, "data"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := st.Account(context.Background(), "carol")
	if err != nil || !auth.VerifyPassword(a, "typed-secret") {
		t.Fatalf("carol's password is not the one typed: %v", err)
	}
}
