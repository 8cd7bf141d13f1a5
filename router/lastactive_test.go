package router

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/config"
)

// lockedBuffer is a log destination that the test reads while replicas
// write to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(substr string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// joinCluster opens replica id of domain example.org on addr, closed at
// the test's end.
func joinCluster(t *testing.T, addr, id string) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := cluster.Open(ctx, cluster.Options{Addr: addr, Domain: "example.org", Replica: id})
	if err != nil {
		t.Fatalf("open replica %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// bindEntry puts a session of user/resource with stream into the
// directory as c's.
func bindEntry(t *testing.T, c *cluster.Cluster, user, resource, stream string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Bind(ctx, cluster.Entry{User: user, Resource: resource, Stream: stream, Available: true}, 0); err != nil {
		t.Fatalf("bind %s/%s on %s: %v", user, resource, c.Replica(), err)
	}
}

// TestRemoteSessionsLastActive: replica a lists the sessions of three
// other replicas. Replica c answers a's call with its sessions' last
// activity, which a's list carries (and c's claim about a stream of
// another replica is ignored); replica b receives the call and never
// answers, replica d died without leaving the directory: their sessions
// are listed with a zero LastActive once the short deadline passed, not
// after the directory's, and one warning names both. Replica a answers
// the same call from another replica (with no sessions of its own, an
// empty answer).
func TestRemoteSessionsLastActive(t *testing.T) {
	srv := redistest.Start(t)
	logs := &lockedBuffer{}
	ca := joinCluster(t, srv.Addr(), "a")
	r := New(Options{Domain: jid.MustParse("example.org"), Log: slog.New(slog.NewTextHandler(logs, nil)),
		Limits: func() config.Limits { return config.Limits{MaxSessionsPerAccount: 10} }, Cluster: ca})
	ca.Handle(r.HandleEnvelope)

	cb := joinCluster(t, srv.Addr(), "b")
	calls := make(chan cluster.Envelope, 4)
	cb.Handle(func(_ context.Context, env cluster.Envelope) *cluster.Envelope {
		calls <- env
		return nil // a replica too busy to answer
	})
	bindEntry(t, cb, "alice", "phone", "stream-b")

	bobDesk := time.Now().Add(-3 * time.Second).Truncate(time.Millisecond)
	bobLaptop := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	cc := joinCluster(t, srv.Addr(), "c")
	cc.Handle(func(_ context.Context, env cluster.Envelope) *cluster.Envelope {
		if env.Kind != kindLastActive {
			return nil
		}
		return lastActiveReply([]activity{{"stream-c1", bobDesk}, {"stream-c2", bobLaptop}, {"stream-b", time.Now()}}, maxLastActive)
	})
	bindEntry(t, cc, "bob", "desk", "stream-c1")
	bindEntry(t, cc, "bob", "laptop", "stream-c2")

	// d is cut from Redis: nobody listens on its channel, while its lease
	// and entry stay until they expire.
	proxy := redistest.NewProxy(t, srv.Addr())
	cd := joinCluster(t, proxy.Addr(), "d")
	t.Cleanup(proxy.Restore) // before d's Close
	cd.Handle(func(context.Context, cluster.Envelope) *cluster.Envelope { return nil })
	bindEntry(t, cd, "carol", "tablet", "stream-d")
	proxy.Cut()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		delivered, err := ca.Send(ctx, "d", cluster.Envelope{Kind: "probe"})
		cancel()
		if err == nil && !delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica d still listens after its cut")
		}
	}

	start := time.Now()
	got := map[string]time.Time{}
	for _, s := range r.Sessions() {
		got[s.JID.String()+" on "+s.Replica] = s.LastActive
	}
	took := time.Since(start)
	want := map[string]time.Time{
		"alice@example.org/phone on b":  {},
		"bob@example.org/desk on c":     bobDesk,
		"bob@example.org/laptop on c":   bobLaptop,
		"carol@example.org/tablet on d": {},
	}
	if len(got) != len(want) {
		t.Errorf("Sessions on a, by last activity:\n got %v\nwant %v", got, want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !g.Equal(w) {
			t.Errorf("%s: LastActive %v, want %v", k, got[k], w)
		}
	}
	if took < lastActiveTimeout || took > lastActiveTimeout+directoryTimeout/2 {
		t.Errorf("Sessions took %v with a replica that does not answer, want about %v", took, lastActiveTimeout)
	}
	select {
	case env := <-calls:
		if env.Kind != kindLastActive || env.From != "a" {
			t.Errorf("b got %+v, want a call of kind %s from a", env, kindLastActive)
		}
	default:
		t.Error("b never got a's call")
	}

	warns := logs.lines("level=WARN")
	if len(warns) != 1 || !strings.Contains(warns[0], "replicas=\"[b d]\"") || !strings.Contains(warns[0], "no last activity") {
		t.Errorf("warnings on a: %q, want one naming b and d", warns)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ans, err := cc.Call(ctx, "a", cluster.Envelope{Kind: kindLastActive})
	if err != nil || ans.From != "a" || len(ans.Args) != 0 {
		t.Errorf("a's answer to c's call: %+v, %v; want an empty answer", ans, err)
	}
}

// TestLastActiveReplyCap: an answer carries the most recently active
// sessions up to its cap, to the millisecond, and reads back as it was
// made.
func TestLastActiveReplyCap(t *testing.T) {
	now := time.Now()
	var acts []activity
	for i := range 10 {
		acts = append(acts, activity{stream: fmt.Sprintf("s%d", i), last: now.Add(-time.Duration(i) * time.Minute)})
	}
	got := parseLastActive(*lastActiveReply(acts, 4))
	if len(got) != 4 {
		t.Fatalf("an answer capped at 4 carries %d sessions: %v", len(got), got)
	}
	for i := range 4 {
		s := fmt.Sprintf("s%d", i)
		if w := now.Add(-time.Duration(i) * time.Minute).Truncate(time.Millisecond); !got[s].Equal(w) {
			t.Errorf("%s: %v, want %v (one of the 4 most recent)", s, got[s], w)
		}
	}
	if bad := parseLastActive(cluster.Envelope{Args: map[string]string{"x": "soon"}}); len(bad) != 0 {
		t.Errorf("an unreadable value read as %v", bad)
	}
}
