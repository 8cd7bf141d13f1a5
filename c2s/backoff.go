package c2s

import (
	"sync"
	"time"

	"github.com/adhocd/adhocd/config"
)

// maxBackoffEntries bounds the table of addresses with failed logins; when
// it is full, expired entries are dropped, and if none are, the oldest
// window is forgotten first.
const maxBackoffEntries = 10000

// Backoff counts failed logins per client address (limits.
// max_auth_failures_per_address within limits.auth_failure_window): password
// guessing from one address is slowed to that many tries per window, across
// streams, whatever limits.max_auth_failures allows per stream.
type Backoff struct {
	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	count int
	since time.Time
}

// blocked reports whether host has used up its failures for the window.
func (b *Backoff) blocked(host string, l config.Limits) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.entries[host]
	if f == nil {
		return false
	}
	if time.Since(f.since) > l.AuthFailureWindow.D() {
		delete(b.entries, host)
		return false
	}
	return f.count >= l.MaxAuthFailuresPerAddress
}

// failed records a failed login from host.
func (b *Backoff) failed(host string, l config.Limits) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.entries == nil {
		b.entries = make(map[string]*failures)
	}
	now := time.Now()
	f := b.entries[host]
	if f == nil || now.Sub(f.since) > l.AuthFailureWindow.D() {
		if len(b.entries) >= maxBackoffEntries {
			b.prune(now, l.AuthFailureWindow.D())
		}
		f = &failures{since: now}
		b.entries[host] = f
	}
	f.count++
}

func (b *Backoff) prune(now time.Time, window time.Duration) {
	var oldest string
	var oldestSince time.Time
	for h, f := range b.entries {
		if now.Sub(f.since) > window {
			delete(b.entries, h)
			continue
		}
		if oldest == "" || f.since.Before(oldestSince) {
			oldest, oldestSince = h, f.since
		}
	}
	if len(b.entries) >= maxBackoffEntries {
		delete(b.entries, oldest)
	}
}
