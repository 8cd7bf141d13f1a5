package cluster_test

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/cluster"
)

const domain = "example.org"

// since is every test entry's bind time.
var since = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// open joins replica id to the cluster on addr; it is closed at the
// test's cleanup (before the server is stopped).
func open(t *testing.T, addr, id string, lease time.Duration) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // after Close below: cleanups run last first
	c, err := cluster.Open(ctx, cluster.Options{
		Addr:    addr,
		Domain:  domain,
		Replica: id,
		Address: id + ".adhocd.test:5222",
		Lease:   lease,
		Log:     slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("close %s: %v", id, err)
		}
	})
	return c
}

// testWriter writes log lines to the test's log until it ends.
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func entry(replica, user, resource, stream string) cluster.Entry {
	return cluster.Entry{User: user, Resource: resource, Replica: replica, Stream: stream, Since: since}
}

// waitFor polls cond until it holds, failing the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resources returns the user's entries, failing on an error.
func resources(t *testing.T, c *cluster.Cluster, user string) []cluster.Entry {
	t.Helper()
	es, err := c.Resources(ctxT(t), user)
	if err != nil {
		t.Fatalf("Resources(%s): %v", user, err)
	}
	return es
}

func wantEntries(t *testing.T, what string, got []cluster.Entry, want ...cluster.Entry) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func wantOnline(t *testing.T, c *cluster.Cluster, users, sessions int) {
	t.Helper()
	u, s, err := c.Online(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if u != users || s != sessions {
		t.Fatalf("Online = %d users, %d sessions; want %d, %d", u, s, users, sessions)
	}
}

func replicaIDs(t *testing.T, c *cluster.Cluster) []string {
	t.Helper()
	rs, err := c.Replicas(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}
