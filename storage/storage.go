// Package storage holds what adhocd keeps across restarts: accounts with
// their SCRAM credentials, rosters, pending subscription requests, offline
// messages, small server settings, and what modules keep per account
// (UserData: vCards, private XML, blocklists, PEP nodes), message
// archives, and the group chat service's persistent rooms with theirs.
//
// Store is the interface the server and its modules use; Open returns the
// embedded implementation on go.etcd.io/bbolt, a single file with ACID
// transactions and no server to run. Passwords are never stored: an account
// holds only SCRAM salted keys (RFC 5802 StoredKey and ServerKey), which are
// not password-equivalent.
package storage

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every Store.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrExists   = errors.New("storage: already exists")
	ErrFull     = errors.New("storage: full")
)

// Errors that mean a write was refused for lack of room (ErrTotalFull,
// ErrNoSpace) are in quota.go, with the bounds that give them.

// Credential is one SCRAM credential (RFC 5802 §3) for one hash function.
type Credential struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// Account is one local user.
type Account struct {
	// Username is the JID localpart, already normalised.
	Username string `json:"username"`
	// SHA1 and SHA256 are the SCRAM credentials for SCRAM-SHA-1 and
	// SCRAM-SHA-256 (PLAIN is verified against SHA256).
	SHA1   Credential `json:"scram_sha1"`
	SHA256 Credential `json:"scram_sha256"`
	// Created is when the account was made.
	Created time.Time `json:"created"`
	// Disabled accounts keep their data but may not log in.
	Disabled bool `json:"disabled,omitempty"`
	// LastLogin and LastLogout are the latest session start and end.
	LastLogin  time.Time `json:"last_login,omitzero"`
	LastLogout time.Time `json:"last_logout,omitzero"`
	// MOTDSeen is the version of the message of the day last delivered.
	MOTDSeen int64 `json:"motd_seen,omitempty"`
	// WelcomePending is set on new accounts while a welcome message is
	// configured, until it is delivered at the first login.
	WelcomePending bool `json:"welcome_pending,omitempty"`
}

// OfflineMessage is a message kept for a user who had no available resource
// (XEP-0160): the whole stanza as XML, and when it arrived.
type OfflineMessage struct {
	Stamp time.Time `json:"stamp"`
	XML   string    `json:"xml"`
}

// Setting keys shared by the packages that read and write them.
const (
	// SettingMOTD holds the message of the day: JSON {"text", "version"}.
	SettingMOTD = "motd"
	// SettingWelcome holds the welcome message for new accounts.
	SettingWelcome = "welcome"
)

// Subscription is the RFC 6121 subscription state of a roster item.
type Subscription string

// The subscription states of RFC 6121 §2.1.2.5.
const (
	SubNone Subscription = "none"
	SubTo   Subscription = "to"
	SubFrom Subscription = "from"
	SubBoth Subscription = "both"
)

// RosterItem is one contact in a user's roster.
type RosterItem struct {
	// JID is the contact's bare JID.
	JID          string       `json:"jid"`
	Name         string       `json:"name,omitempty"`
	Subscription Subscription `json:"subscription"`
	// AskOut is set while an outbound subscription request is pending
	// (ask='subscribe').
	AskOut bool `json:"ask_out,omitempty"`
	// PendingIn is set while an inbound subscription request awaits the
	// user's answer (RFC 6121 §3.1.3).
	PendingIn bool `json:"pending_in,omitempty"`
	// PendingContent is the XML content (status, nick, …) of the pending
	// inbound request, delivered with it when the user comes online.
	PendingContent string `json:"pending_content,omitempty"`
	// Hidden items exist only to hold a pending inbound request; they are
	// not part of the roster the user sees until the user adds or approves.
	Hidden bool     `json:"hidden,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// RemovedItem is a roster item that DeleteAccount removed from another
// account's roster.
type RemovedItem struct {
	// Owner is the username whose roster held the item.
	Owner string
	// Item is the item as it was before the removal.
	Item RosterItem
	// Version is the owner's roster version after the removal.
	Version uint64
}

// Store is the persistent state of the server. Every method is safe for
// concurrent use; a method that changes data is atomic.
type Store interface {
	// CreateAccount adds a new account, or returns ErrExists.
	CreateAccount(ctx context.Context, a Account) error
	// Account returns one account, or ErrNotFound.
	Account(ctx context.Context, username string) (Account, error)
	// UpdateAccount applies fn to the stored account atomically; an error
	// from fn aborts the change. ErrNotFound if there is no such account.
	UpdateAccount(ctx context.Context, username string, fn func(*Account) error) error
	// DeleteAccount removes, in one transaction, the account and everything
	// that belongs to it (its roster with the requests pending for it, its
	// offline messages) and the item for it in every other roster: bare is
	// its bare JID as those rosters name it. It returns the items it removed
	// from other rosters, for the server to tell those contacts.
	// ErrNotFound if there is no such account.
	DeleteAccount(ctx context.Context, username, bare string) ([]RemovedItem, error)
	// Accounts returns every account, ordered by username.
	Accounts(ctx context.Context) ([]Account, error)
	// RecordLogin and RecordLogout set the account's LastLogin or LastLogout
	// to at, if later than what it has; an unknown account is ignored. They
	// may return before the time is on disk (Bolt writes them in batches,
	// see WithLoginTimeDelay): reads through the store see it at once, and
	// Close writes what is pending.
	RecordLogin(username string, at time.Time) error
	RecordLogout(username string, at time.Time) error

	// Roster returns the user's roster ordered by JID, and its version.
	Roster(ctx context.Context, username string) ([]RosterItem, uint64, error)
	// RosterItem returns one item, or ErrNotFound.
	RosterItem(ctx context.Context, username, contact string) (RosterItem, error)
	// UpdateRosterItem applies fn to the item for contact (the zero item with
	// JID set if absent) atomically. If fn reports remove, the item is
	// deleted. It returns the roster version after the change. An error from
	// fn aborts the change. A store with a free-disk floor returns
	// ErrNoSpace below it.
	UpdateRosterItem(ctx context.Context, username, contact string, fn func(item *RosterItem, exists bool) (remove bool, err error)) (uint64, error)

	// StoreOffline keeps m for username within q: ErrFull when the
	// account's messages or bytes would pass q's bounds, ErrTotalFull when
	// the store's would. ErrNotFound if there is no such account. A store
	// with a free-disk floor returns ErrNoSpace below it.
	StoreOffline(ctx context.Context, username string, m OfflineMessage, q OfflineQuota) error
	// TakeOffline returns the messages kept for username, oldest first, and
	// removes them.
	TakeOffline(ctx context.Context, username string) ([]OfflineMessage, error)
	// ExpireOffline removes up to limit offline messages that arrived
	// before before, in one transaction, and returns how many it removed.
	ExpireOffline(ctx context.Context, before time.Time, limit int) (int, error)

	// Setting returns the value stored under key, or ErrNotFound.
	Setting(ctx context.Context, key string) ([]byte, error)
	// PutSetting stores value under key; a nil value deletes the key.
	PutSetting(ctx context.Context, key string, value []byte) error

	// UserData is what modules keep per account (userdata.go).
	UserData
	// Archive is each account's message archive (archive.go).
	Archive
	// Rooms and RoomArchive are the group chat service's persistent
	// rooms and their archives (rooms.go).
	Rooms
	RoomArchive

	// Close releases the store; it waits for running transactions.
	Close() error
}
