package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readNoEcho turns the terminal's echo off, then prompts and reads one line,
// then turns echo back on. The prompt comes after echo is off, so that what
// is typed as soon as the prompt shows is never echoed (x/term's
// ReadPassword turns echo off only once the caller has prompted).
func readNoEcho(f *os.File, prompt io.Writer, label string) ([]byte, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(prompt, label)
	defer fmt.Fprintln(prompt)
	return readLine(f)
}

// readLine reads up to a newline, at most 4096 bytes, byte by byte so that
// nothing after the line is taken from the terminal.
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 4096 {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				return line, nil
			}
			line = append(line, b[0])
		}
		if err == io.EOF && len(line) > 0 {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return line, nil
}
