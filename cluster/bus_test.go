package cluster_test

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/cluster"
	"github.com/adhocd/adhocd/cluster/redistest"
)

// inbox collects the envelopes a replica's handler gets, and answers
// calls of kind "ping" with "pong" carrying the call's args back.
type inbox struct {
	ch chan cluster.Envelope
}

func newInbox(c *cluster.Cluster) *inbox {
	in := &inbox{ch: make(chan cluster.Envelope, 64)}
	c.Handle(func(ctx context.Context, env cluster.Envelope) *cluster.Envelope {
		in.ch <- env
		switch env.Kind {
		case "ping":
			return &cluster.Envelope{Kind: "pong", Args: env.Args}
		case "ping-default":
			return &cluster.Envelope{XML: "<done/>"}
		}
		return nil
	})
	return in
}

func (in *inbox) next(t *testing.T) cluster.Envelope {
	t.Helper()
	select {
	case env := <-in.ch:
		return env
	case <-time.After(10 * time.Second):
		t.Fatal("no envelope within 10s")
		return cluster.Envelope{}
	}
}

// TestSend: an envelope sent to a live replica reaches its handler with
// From set; one sent to a replica that nobody subscribes to is reported
// undelivered.
func TestSend(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	newInbox(a)
	inB := newInbox(b)
	ctx := ctxT(t)

	env := cluster.Envelope{
		Kind: "deliver", From: "forged", To: "alice@example.org/phone", Stream: "s1",
		XML: `<message to="alice@example.org/phone"><body>hi &amp; bye</body></message>`, Args: map[string]string{"k": "v"},
	}
	delivered, err := a.Send(ctx, "b", env)
	if err != nil || !delivered {
		t.Fatalf("Send to b = %v, %v; want delivered", delivered, err)
	}
	got := inB.next(t)
	want := env
	want.From = "a"
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("b got %+v, want %+v", got, want)
	}

	delivered, err = a.Send(ctx, "gone", env)
	if err != nil || delivered {
		t.Fatalf("Send to a replica nobody subscribes = %v, %v; want not delivered", delivered, err)
	}
}

// TestCall: a call's reply is what the handler returns, with the call's
// ID; calls to nobody fail at once, a call the handler does not answer
// fails when its context ends.
func TestCall(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	newInbox(a)
	inB := newInbox(b)
	ctx := ctxT(t)

	r, err := a.Call(ctx, "b", cluster.Envelope{Kind: "ping", Args: map[string]string{"n": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	call := inB.next(t)
	if r.Kind != "pong" || r.From != "b" || r.ID == "" || r.ID != call.ID || r.Args["n"] != "1" {
		t.Fatalf("reply %+v to call %+v", r, call)
	}
	r, err = a.Call(ctx, "b", cluster.Envelope{Kind: "ping-default", ID: "mine"})
	if err != nil || r.Kind != "reply" || r.ID != "mine" || r.XML != "<done/>" {
		t.Fatalf("reply %+v, %v; want kind reply, ID mine", r, err)
	}
	inB.next(t)

	// A call to itself goes through Redis too.
	if r, err := b.Call(ctx, "b", cluster.Envelope{Kind: "ping"}); err != nil || r.Kind != "pong" {
		t.Fatalf("call to itself: %+v, %v", r, err)
	}
	inB.next(t)

	if _, err := a.Call(ctx, "gone", cluster.Envelope{Kind: "ping"}); !errors.Is(err, cluster.ErrNoReplica) {
		t.Fatalf("call to nobody: %v, want ErrNoReplica", err)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := a.Call(short, "b", cluster.Envelope{Kind: "no-answer"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unanswered call: %v, want DeadlineExceeded", err)
	}
	if got := inB.next(t); got.Kind != "no-answer" {
		t.Fatalf("b got %+v", got)
	}

	// Calls from inside a handler: replies do not wait for the workers.
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := a.Call(ctx, "b", cluster.Envelope{Kind: "ping"})
			errs <- err
		}()
	}
	for range 40 {
		inB.next(t)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestNestedCalls: handlers that call another replica, more of them at
// once than there are workers, all get their replies.
func TestNestedCalls(t *testing.T) {
	srv := redistest.Start(t)
	ctx := ctxT(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	b.Handle(func(ctx context.Context, env cluster.Envelope) *cluster.Envelope {
		return &cluster.Envelope{Kind: "leaf"}
	})
	a.Handle(func(ctx context.Context, env cluster.Envelope) *cluster.Envelope {
		r, err := a.Call(ctx, "b", cluster.Envelope{Kind: "inner"})
		if err != nil {
			return &cluster.Envelope{Kind: "error", XML: err.Error()}
		}
		return &cluster.Envelope{Kind: "outer:" + r.Kind}
	})
	n := 2 * cluster.DefaultWorkers
	res := make(chan string, n)
	for range n {
		go func() {
			r, err := b.Call(ctx, "a", cluster.Envelope{Kind: "outer"})
			if err != nil {
				res <- err.Error()
				return
			}
			res <- r.Kind
		}()
	}
	for range n {
		if got := <-res; got != "outer:leaf" {
			t.Fatalf("nested call answered %q", got)
		}
	}
}

// TestBroadcast: an event reaches every replica, the sender included.
func TestBroadcast(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	inA, inB := newInbox(a), newInbox(b)
	if err := a.Broadcast(ctxT(t), cluster.Envelope{Kind: "settings-changed", Args: map[string]string{"key": "motd"}}); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]*inbox{"a": inA, "b": inB} {
		got := in.next(t)
		if got.Kind != "settings-changed" || got.From != "a" || got.Args["key"] != "motd" {
			t.Fatalf("%s got %+v", name, got)
		}
	}
}

// TestHandleLate: envelopes that arrive before Handle is set wait for it.
func TestHandleLate(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	ctx := ctxT(t)
	for _, k := range []string{"one", "two", "three"} {
		if ok, err := a.Send(ctx, "b", cluster.Envelope{Kind: k}); err != nil || !ok {
			t.Fatalf("Send %s = %v, %v", k, ok, err)
		}
	}
	in := newInbox(b)
	var kinds []string
	for range 3 {
		kinds = append(kinds, in.next(t).Kind)
	}
	sort.Strings(kinds)
	if !reflect.DeepEqual(kinds, []string{"one", "three", "two"}) {
		t.Fatalf("b got %v", kinds)
	}
}

// TestHandlerPanic: a handler's panic is logged; the replica goes on.
func TestHandlerPanic(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, srv.Addr(), "a", 0)
	b := open(t, srv.Addr(), "b", 0)
	b.Handle(func(ctx context.Context, env cluster.Envelope) *cluster.Envelope {
		if env.Kind == "panic" {
			panic("boom")
		}
		return &cluster.Envelope{Kind: "ok"}
	})
	ctx := ctxT(t)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := a.Call(short, "b", cluster.Envelope{Kind: "panic"}); err == nil {
		t.Fatal("a panicking handler answered")
	}
	for range 2 * cluster.DefaultWorkers { // more than the workers: none was lost
		if r, err := a.Call(ctx, "b", cluster.Envelope{Kind: "x"}); err != nil || r.Kind != "ok" {
			t.Fatalf("after a panic: %+v, %v", r, err)
		}
	}
}
