package admin_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestReloadRacesEditAdmin races configuration reloads (what SIGHUP runs)
// against edit-admin run by an administrator over TCP with the mellium
// client of servertest: in every round the configuration gains an admin
// while edit-admin adds a stored one, and neither update may undo the other.
// Before admin state had its own lock, a Reload that read the stored admins
// before an edit-admin and wrote them back after it lost the edit.
func TestReloadRacesEditAdmin(t *testing.T) {
	var (
		mu       sync.Mutex
		base     config.Config
		cfgAdmin = []string{"root@localhost"}
	)
	reload := server.WithReload(func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		c := base
		c.Admins = slices.Clone(cfgAdmin)
		return c, nil
	})
	srv := servertest.StartWith(t, []server.Option{reload}, func(c *config.Config) {
		c.Admins = []string{"root@localhost"}
		mu.Lock()
		base = *c
		mu.Unlock()
	})
	srv.AddUser("root", "toor")
	e := &env{srv: srv, root: adhoc.NewRequester(srv.Dial("root", "toor", "").Session)}

	const rounds, reloaders = 25, 6
	var edited []string
	for r := 1; r <= rounds; r++ {
		mu.Lock()
		cfgAdmin = append(cfgAdmin, fmt.Sprintf("cfg%d@localhost", r))
		wantCfg := slices.Clone(cfgAdmin)
		mu.Unlock()
		edited = append(edited, fmt.Sprintf("ed%d@localhost", r))

		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, reloaders)
		for range reloaders {
			wg.Go(func() {
				for n := 0; n < 2 || !stop.Load(); n++ {
					if _, err := srv.Reload(ctx(t)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		res := e.run(t, "edit-admin", adhoc.Values{"adminjids": slices.Clone(edited)})
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: reload: %v", r, err)
		}
		if res.Status != adhoc.Completed || note(res, adhoc.NoteError) != "" {
			t.Fatalf("round %d: edit-admin: %+v", r, res)
		}

		configured, stored := srv.Admins()
		slices.Sort(configured)
		slices.Sort(wantCfg)
		if !slices.Equal(configured, wantCfg) {
			t.Fatalf("round %d: configured admins %v, want the reloaded %v", r, configured, wantCfg)
		}
		if want := slices.Sorted(slices.Values(edited)); !slices.Equal(stored, want) {
			t.Fatalf("round %d: stored admins %v, want edit-admin's %v (a reload undid the edit)", r, stored, want)
		}
		for _, a := range append(wantCfg, edited...) {
			if !srv.IsAdmin(jid.MustParse(a)) {
				t.Fatalf("round %d: %s is not an administrator", r, a)
			}
		}
		if got := srv.Config().Admins; !slices.Equal(slices.Sorted(slices.Values(got)), wantCfg) {
			t.Fatalf("round %d: Config().Admins %v, want %v", r, got, wantCfg)
		}
	}
}
