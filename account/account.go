// Package account owns the operations on local accounts (add, change the
// password, disable, enable, delete, list) and the administrator list, with
// the rules that go with them stated once:
//
//   - a password change ends the account's other sessions, which
//     authenticated with the old password;
//   - disabling refuses new logins, then ends the sessions;
//   - deleting ends the sessions first, then removes the account with
//     everything that is its (roster, pending subscription requests, offline
//     messages, ad-hoc command sessions) and its item in every other local
//     roster, and tells those contacts as RFC 6121 §3.2 and §3.3 have a
//     user's server tell them of a cancelled subscription: an account made
//     again under the same name inherits nothing of the old one.
//
// The command line with the server stopped (on the store directly), the
// server's control socket, the XEP-0133 admin commands and the bootstrap
// admin of the environment all call a Service. What a Service needs of a
// running server is the narrow Sessions interface; offline, NoSessions has
// no session to end and no contact online to tell, and the same code runs.
//
// The package imports neither the server nor a module, so that a program
// can administer a store without linking them.
package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/canonjid"
	"github.com/adhocd/adhocd/storage"
)

// ErrWrongDomain is returned for a JID of another domain.
var ErrWrongDomain = errors.New("account: not on this server's domain")

// Username checks that s is a bare JID user@domain on this server (a bare
// localpart is taken as on domain) and returns its normalised localpart.
func Username(s, domain string) (string, error) {
	var j jid.JID
	var err error
	if !strings.ContainsAny(s, "@/") {
		// A bare name is a localpart on domain ("john+doe" is a valid
		// localpart though it would not be a valid domain).
		if j, err = canonjid.New(s, domain, ""); err != nil {
			return "", fmt.Errorf("account: %q is not a valid username: %w", s, err)
		}
	} else if j, err = canonjid.Parse(s); err != nil {
		return "", fmt.Errorf("account: %q is not a valid JID: %w", s, err)
	}
	switch {
	case j.Localpart() == "":
		return "", fmt.Errorf("account: %q has no user part", s)
	case j.Resourcepart() != "":
		return "", fmt.Errorf("account: %q must be a bare JID, without /resource", s)
	case j.Domainpart() != domain:
		return "", fmt.Errorf("account: %q: %w %s", s, ErrWrongDomain, domain)
	}
	return j.Localpart(), nil
}

// Sessions is what a Service needs of a running server: ending an account's
// sessions and telling online contacts what changed.
type Sessions interface {
	// EndSessions closes user's sessions but the one bound to resource
	// except ("" for none) with a not-authorized stream error whose text is
	// reason, unbinding them before it returns, and returns how many it
	// closed.
	EndSessions(user, except, reason string) int
	// ContactRemoved tells r.Owner's online resources that deleted, an
	// account being deleted, left their roster: the unsubscribe or
	// unsubscribed presence from deleted that r.Item's subscription state
	// calls for, then a roster push of the removal where the item was
	// visible.
	ContactRemoved(ctx context.Context, deleted jid.JID, r storage.RemovedItem)
	// AccountCreated tells the running server of a new account.
	AccountCreated(ctx context.Context, created jid.JID)
	// AccountDeleted forgets what the server holds in memory for the deleted
	// account (its ad-hoc command sessions).
	AccountDeleted(ctx context.Context, deleted jid.JID)
}

// NoSessions is the Sessions of a store with no server running: there is no
// session to end and no one online to tell.
type NoSessions struct{}

// EndSessions implements Sessions: there are none.
func (NoSessions) EndSessions(string, string, string) int { return 0 }

// ContactRemoved implements Sessions: no contact is online.
func (NoSessions) ContactRemoved(context.Context, jid.JID, storage.RemovedItem) {}

// AccountCreated implements Sessions: no server is told.
func (NoSessions) AccountCreated(context.Context, jid.JID) {}

// AccountDeleted implements Sessions: nothing is held in memory.
func (NoSessions) AccountDeleted(context.Context, jid.JID) {}

// Service runs the account operations on one store for one domain.
type Service struct {
	store      storage.Store
	domain     string
	iterations int
	live       Sessions
}

// New returns the Service of store for domain: passwords are kept as SCRAM
// credentials of iterations rounds, and live is the running server's
// sessions (NoSessions offline).
func New(store storage.Store, domain string, iterations int, live Sessions) *Service {
	if live == nil {
		live = NoSessions{}
	}
	return &Service{store: store, domain: domain, iterations: iterations, live: live}
}

// Username returns the normalised localpart of an account of this domain,
// given as user@domain or as a bare username.
func (s *Service) Username(account string) (string, error) { return Username(account, s.domain) }

// bare returns the account's bare JID.
func (s *Service) bare(user string) (jid.JID, error) {
	j, err := canonjid.New(user, s.domain, "")
	if err != nil {
		return jid.JID{}, fmt.Errorf("account: %s@%s: %w", user, s.domain, err)
	}
	return j, nil
}

// Add creates an account (user@domain or a username) with password. While a
// welcome message is set, the new account gets it at its first login.
// storage.ErrExists if the account exists.
func (s *Service) Add(ctx context.Context, account, password string) error {
	user, err := s.Username(account)
	if err != nil {
		return err
	}
	a := storage.Account{Username: user, Created: time.Now().UTC()}
	if _, err := s.store.Setting(ctx, storage.SettingWelcome); err == nil {
		a.WelcomePending = true
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("account: add %s: %w", user, err)
	}
	if err := auth.SetPassword(&a, password, s.iterations); err != nil {
		return fmt.Errorf("account: add %s: %w", user, err)
	}
	if err := s.store.CreateAccount(ctx, a); err != nil {
		return fmt.Errorf("account: add %s: %w", user, err)
	}
	if bare, err := s.bare(user); err == nil {
		s.live.AccountCreated(ctx, bare)
	}
	return nil
}

// SetPassword replaces the account's password and ends its sessions, which
// authenticated with the old one, but the one bound to resource keep (the
// administrator changing their own password stays logged in; "" ends every
// session). It returns how many sessions it ended.
func (s *Service) SetPassword(ctx context.Context, account, password, keep string) (int, error) {
	user, err := s.Username(account)
	if err != nil {
		return 0, err
	}
	err = s.store.UpdateAccount(ctx, user, func(a *storage.Account) error {
		return auth.SetPassword(a, password, s.iterations)
	})
	if err != nil {
		return 0, fmt.Errorf("account: change the password of %s: %w", user, err)
	}
	return s.live.EndSessions(user, keep, "the password was changed"), nil
}

// Disable refuses the account's logins from now on and ends its sessions;
// its data stays. It returns how many sessions it ended.
func (s *Service) Disable(ctx context.Context, account string) (int, error) {
	user, err := s.Username(account)
	if err != nil {
		return 0, err
	}
	// Disabled first, so that no login slips in after the sessions end.
	if err := s.store.UpdateAccount(ctx, user, func(a *storage.Account) error { a.Disabled = true; return nil }); err != nil {
		return 0, fmt.Errorf("account: disable %s: %w", user, err)
	}
	return s.live.EndSessions(user, "", "the account was disabled"), nil
}

// Enable lets a disabled account log in again.
func (s *Service) Enable(ctx context.Context, account string) error {
	user, err := s.Username(account)
	if err != nil {
		return err
	}
	if err := s.store.UpdateAccount(ctx, user, func(a *storage.Account) error { a.Disabled = false; return nil }); err != nil {
		return fmt.Errorf("account: enable %s: %w", user, err)
	}
	return nil
}

// Delete ends the account's sessions (their unavailable presence goes to
// every contact that had it, RFC 6121 §4.5.2), then removes, in one store
// transaction, the account with its roster, the requests pending for it and
// its offline messages, and its item in every other local roster. Each
// contact's online resources get the subscription presence RFC 6121 §3.2.3
// and §3.3.3 deliver for a cancelled subscription (unsubscribe where the
// deleted account was subscribed to the contact or asked to be,
// unsubscribed where the contact was or asked to be) and a roster push of
// the removal. Last, the account's ad-hoc sessions are ended.
// storage.ErrNotFound if there is no such account.
func (s *Service) Delete(ctx context.Context, account string) error {
	user, err := s.Username(account)
	if err != nil {
		return err
	}
	bare, err := s.bare(user)
	if err != nil {
		return err
	}
	if _, err := s.store.Account(ctx, user); err != nil {
		return fmt.Errorf("account: delete %s: %w", user, err)
	}
	const reason = "the account was deleted"
	s.live.EndSessions(user, "", reason)
	removed, err := s.store.DeleteAccount(ctx, user, bare.String())
	if err != nil {
		return fmt.Errorf("account: delete %s: %w", user, err)
	}
	// A login that raced the first round ends now: the account is gone.
	s.live.EndSessions(user, "", reason)
	for _, r := range removed {
		s.live.ContactRemoved(ctx, bare, r)
	}
	s.live.AccountDeleted(ctx, bare)
	return nil
}

// List returns the bare JIDs of every account, ordered by username.
func (s *Service) List(ctx context.Context) ([]string, error) {
	accts, err := s.store.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("account: list: %w", err)
	}
	out := make([]string, 0, len(accts))
	for _, a := range accts {
		out = append(out, a.Username+"@"+s.domain)
	}
	return out, nil
}

// Request is one account operation as `adhocd user …` sends it: run on the
// store directly while the server is stopped, and through the server's
// control socket while it runs.
type Request struct {
	// Op is add, passwd, disable, enable, delete or list.
	Op string `json:"op"`
	// User is the account, user@domain or a username (not for list).
	User string `json:"user,omitempty"`
	// Password is the new password (add and passwd).
	Password string `json:"password,omitempty"`
}

// Response answers a Request.
type Response struct {
	// Error says why the operation failed; empty on success.
	Error string `json:"error,omitempty"`
	// Users lists the accounts (list).
	Users []string `json:"users,omitempty"`
}

// Ops is the operations a Request may name.
var Ops = []string{"add", "passwd", "disable", "enable", "delete", "list"}

// Do runs one Request.
func (s *Service) Do(ctx context.Context, req Request) Response {
	var err error
	var users []string
	switch req.Op {
	case "add":
		err = s.Add(ctx, req.User, req.Password)
	case "passwd":
		_, err = s.SetPassword(ctx, req.User, req.Password, "")
	case "disable":
		_, err = s.Disable(ctx, req.User)
	case "enable":
		err = s.Enable(ctx, req.User)
	case "delete":
		err = s.Delete(ctx, req.User)
	case "list":
		users, err = s.List(ctx)
	default:
		err = fmt.Errorf("account: unknown operation %q (want %s)", req.Op, strings.Join(Ops, ", "))
	}
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{Users: users}
}
