// Package account creates, changes and removes local accounts on a Store.
// The command line (with the server stopped), the server's control socket
// (with it running) and the admin commands all go through these functions so
// that an account is made the same way everywhere.
package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/canonjid"
	"github.com/adhocd/adhocd/server/auth"
	"github.com/adhocd/adhocd/server/storage"
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

// Add creates an account with password. While a welcome message is set, the
// new account gets it at its first login.
func Add(ctx context.Context, st storage.Store, username, password string, iterations int) error {
	a := storage.Account{Username: username, Created: time.Now().UTC()}
	if _, err := st.Setting(ctx, storage.SettingWelcome); err == nil {
		a.WelcomePending = true
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := auth.SetPassword(&a, password, iterations); err != nil {
		return err
	}
	return st.CreateAccount(ctx, a)
}

// SetPassword replaces an account's password.
func SetPassword(ctx context.Context, st storage.Store, username, password string, iterations int) error {
	return st.UpdateAccount(ctx, username, func(a *storage.Account) error {
		return auth.SetPassword(a, password, iterations)
	})
}
