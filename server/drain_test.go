package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestShutdownDrain: with shutdown.drain set, a shutdown turns the server
// not ready at once and closes its streams with system-shutdown spread
// over the drain, not all in the same moment, and every one of them is
// closed by the end.
func TestShutdownDrain(t *testing.T) {
	const drain = time.Second
	srv := servertest.Start(t, func(c *config.Config) { c.Shutdown.Drain = config.Duration(drain) })
	const n = 4
	var raws []*servertest.Raw
	for i := range n {
		u := fmt.Sprintf("user%d", i)
		srv.AddUser(u, "pw")
		raws = append(raws, srv.RawLogin(u, "pw", "r"))
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop() }()

	var mu sync.Mutex
	var closedAt []time.Time
	var wg sync.WaitGroup
	for _, r := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, ok := r.ClosedByServer(drain + 5*time.Second)
			if !ok || !strings.Contains(got, "system-shutdown") {
				t.Errorf("a stream at shutdown: %q (closed %v), want system-shutdown", got, ok)
				return
			}
			mu.Lock()
			closedAt = append(closedAt, time.Now())
			mu.Unlock()
		}()
	}
	deadline := time.Now().Add(time.Second)
	for srv.Ready() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.Ready() {
		t.Fatal("still ready after the shutdown began")
	}
	wg.Wait()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if len(closedAt) != n {
		t.Fatalf("%d of %d streams closed", len(closedAt), n)
	}
	first, last := closedAt[0], closedAt[0]
	for _, at := range closedAt {
		if at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	// Slices at 0, ¼, ½ and ¾ of the drain: the last closes at least half
	// a drain after the first.
	if spread := last.Sub(first); spread < drain/2 {
		t.Fatalf("the streams closed within %s of each other, want them spread over the drain of %s", spread, drain)
	}
}
