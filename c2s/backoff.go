package c2s

import (
	"sync"
	"time"

	"github.com/adhocd/adhocd/config"
)

// maxBackoffEntries bounds the table of addresses and (address, account)
// pairs with failed logins; when it is full, expired entries are dropped,
// and if none are, the oldest window is forgotten first.
const maxBackoffEntries = 10000

// Backoff counts failed logins per client address and per (address,
// account) within limits.auth_failure_window, across streams, whatever
// limits.max_auth_failures allows per stream. Guessing one account's
// password from one address is stopped after
// limits.max_auth_failures_per_account_address tries, for that account
// only: the other users behind the same address (a NAT, a load balancer
// that hides client addresses) still log in. A spray over many accounts
// from one address is stopped by the larger whole-address budget,
// limits.max_auth_failures_per_address.
type Backoff struct {
	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	count int
	since time.Time
}

// accountKey is the table's key of (host, account): a NUL cannot be in
// either.
func accountKey(host, account string) string { return host + "\x00" + account }

// blocked reports whether host has used up its failures for the window.
func (b *Backoff) blocked(host string, l config.Limits) bool {
	return b.count(host, l) >= l.MaxAuthFailuresPerAddress
}

// blockedAccount reports whether account has used up its failures from
// host for the window.
func (b *Backoff) blockedAccount(host, account string, l config.Limits) bool {
	return b.count(accountKey(host, account), l) >= l.MaxAuthFailuresPerAccountAddress
}

// count returns the failures recorded under key in the current window.
func (b *Backoff) count(key string, l config.Limits) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.entries[key]
	if f == nil {
		return 0
	}
	if time.Since(f.since) > l.AuthFailureWindow.D() {
		delete(b.entries, key)
		return 0
	}
	return f.count
}

// failed records a failed login from host, for account when it is known
// (empty: the exchange failed before the client named one).
func (b *Backoff) failed(host, account string, l config.Limits) {
	b.record(host, l)
	if account != "" {
		b.record(accountKey(host, account), l)
	}
}

// succeeded forgets the failures of account from host: its budget counts
// failures since its last login from there, so that a user's own typos do
// not add up across the window. The whole-address count stays.
func (b *Backoff) succeeded(host, account string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, accountKey(host, account))
}

func (b *Backoff) record(key string, l config.Limits) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.entries == nil {
		b.entries = make(map[string]*failures)
	}
	now := time.Now()
	f := b.entries[key]
	if f == nil || now.Sub(f.since) > l.AuthFailureWindow.D() {
		if len(b.entries) >= maxBackoffEntries {
			b.prune(now, l.AuthFailureWindow.D())
		}
		f = &failures{since: now}
		b.entries[key] = f
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
