//go:build !linux

package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// readNoEcho prompts and reads a password with x/term, which turns echo off
// once the prompt is written.
func readNoEcho(f *os.File, prompt io.Writer, label string) ([]byte, error) {
	fmt.Fprint(prompt, label)
	defer fmt.Fprintln(prompt)
	return term.ReadPassword(int(f.Fd()))
}
