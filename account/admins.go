package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/storage"
)

// SettingAdmins is the store key of the administrators edit-admin keeps.
const SettingAdmins = "admins"

// Admins is a server's administrator list, in one place: the configured
// admins (config.yaml's, which a reload replaces, and the bootstrap admin of
// the environment, which stays across reloads) and the stored admins that
// edit-admin keeps in the store. Changes are serialised by its own lock, each
// replacing only its half, so that a reload and an edit-admin running at
// once keep each other's update; reads take no lock.
type Admins struct {
	mu    sync.Mutex // held by changes, across the store write
	store storage.Store
	cur   atomic.Pointer[adminSet]
}

// adminSet is one version of the list, never changed once published.
type adminSet struct {
	bootstrap          string
	config             []string // as configured, without the bootstrap admin
	configured, stored []string
	all                map[string]bool
}

func newAdminSet(bootstrap string, config, stored []string) *adminSet {
	a := &adminSet{bootstrap: bootstrap, config: slices.Clone(config), stored: slices.Clone(stored), all: map[string]bool{}}
	a.configured = slices.Clone(config)
	if bootstrap != "" && !slices.Contains(a.configured, bootstrap) {
		a.configured = append(a.configured, bootstrap)
	}
	for _, j := range a.configured {
		a.all[j] = true
	}
	for _, j := range a.stored {
		a.all[j] = true
	}
	return a
}

// NewAdmins returns the list with configured (bare JIDs from the
// configuration) and nothing stored yet: Load reads the store.
func NewAdmins(configured []string) *Admins {
	a := &Admins{}
	a.cur.Store(newAdminSet("", configured, nil))
	return a
}

// SetBootstrap makes the bare JID j a configured administrator that reloads
// keep (ADHOCD_ADMIN_JID).
func (a *Admins) SetBootstrap(j string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cur.Load()
	a.cur.Store(newAdminSet(j, c.config, c.stored))
}

// Load reads the stored administrators from st, which later changes are
// written to.
func (a *Admins) Load(ctx context.Context, st storage.Store) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.store = st
	raw, err := st.Setting(ctx, SettingAdmins)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("account: stored admins: %w", err)
	}
	var stored []string
	if err := json.Unmarshal(raw, &stored); err != nil {
		return fmt.Errorf("account: stored admins: %w", err)
	}
	c := a.cur.Load()
	a.cur.Store(newAdminSet(c.bootstrap, c.config, stored))
	return nil
}

// Reconfigure replaces the configured administrators (a reload); the
// bootstrap admin and the stored ones stay.
func (a *Admins) Reconfigure(configured []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cur.Load()
	a.cur.Store(newAdminSet(c.bootstrap, configured, c.stored))
}

// Set replaces the stored administrators (bare JIDs, edit-admin) in the store
// and in memory; the configured ones stay administrators whatever is stored.
func (a *Admins) Set(ctx context.Context, stored []string) error {
	norm := make([]string, 0, len(stored))
	for _, s := range stored {
		j, err := jid.Parse(s)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
			return fmt.Errorf("account: admin %q is not a bare JID", s)
		}
		if !slices.Contains(norm, j.String()) {
			norm = append(norm, j.String())
		}
	}
	slices.Sort(norm)
	raw, err := json.Marshal(norm)
	if err != nil {
		return fmt.Errorf("account: stored admins: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.store == nil {
		return errors.New("account: the admin list has no store yet")
	}
	// Written under the lock, so that the store and memory see concurrent
	// edits in the same order.
	if err := a.store.PutSetting(ctx, SettingAdmins, raw); err != nil {
		return fmt.Errorf("account: store admins: %w", err)
	}
	c := a.cur.Load()
	a.cur.Store(newAdminSet(c.bootstrap, c.config, norm))
	return nil
}

// Lists returns the configured administrators (with the bootstrap admin) and
// the stored ones.
func (a *Admins) Lists() (configured, stored []string) {
	c := a.cur.Load()
	return slices.Clone(c.configured), slices.Clone(c.stored)
}

// Configured returns the configured administrators, with the bootstrap
// admin.
func (a *Admins) Configured() []string { return slices.Clone(a.cur.Load().configured) }

// Is reports whether j's bare JID is an administrator.
func (a *Admins) Is(j jid.JID) bool { return a.cur.Load().all[j.Bare().String()] }
