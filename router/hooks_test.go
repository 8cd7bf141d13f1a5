package router_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/wire"
)

// hookOrder records, in order, the message hooks the router runs: the
// order a module such as XEP-0313's archive relies on.
type hookOrder struct {
	mu    sync.Mutex
	calls []string
}

func (h *hookOrder) Name() string                              { return "hook-order" }
func (h *hookOrder) Start(context.Context, modules.Host) error { return nil }
func (h *hookOrder) Stop(context.Context) error                { return nil }

func (h *hookOrder) record(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *hookOrder) MessageOutbound(_ context.Context, m modules.Message) {
	h.record("outbound from " + m.Sender.JID().Localpart())
}

func (h *hookOrder) MessageInbound(_ context.Context, _ modules.Message, user string) *wire.Element {
	h.record("inbound to " + user)
	return nil
}

func (h *hookOrder) MessageSent(_ context.Context, m modules.Message) {
	h.record("sent by " + m.Sender.JID().Localpart())
}

func (h *hookOrder) MessageReceived(_ context.Context, _ modules.Message, user string, _ []modules.Session) {
	h.record("received by " + user)
}

// TestMessageHookOrder: a message a session sends is seen by the
// outbound hooks before it reaches its recipient's account (the inbound
// hooks, then delivery), and by the sent hooks after; a message the
// recipient gets before the sender's client has even read the answer to
// its own stanza is therefore always after it in every hook.
func TestMessageHookOrder(t *testing.T) {
	rec := &hookOrder{}
	srv := servertest.StartWith(t, []server.Option{server.WithModules(rec)})
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.Dial("alice", "pw", "a")
	bob := srv.Dial("bob", "pw", "b")
	if err := alice.SendRaw(ctx(t), `<message to='`+bob.LocalAddr().String()+`' type='chat'><body>hi</body></message>`); err != nil {
		t.Fatal(err)
	}
	bob.Next(wait, func(s servertest.Stanza) bool { return s.Name == "message" })
	want := []string{"outbound from alice", "inbound to bob", "received by bob", "sent by alice"}
	deadline := time.Now().Add(wait)
	for {
		rec.mu.Lock()
		got := slices.Clone(rec.calls)
		rec.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hooks ran %s, want %s", fmt.Sprint(got), fmt.Sprint(want))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// approvals records the subscription approvals the router reports.
type approvals struct {
	mu    sync.Mutex
	calls []string
}

func (a *approvals) Name() string                              { return "approvals" }
func (a *approvals) Start(context.Context, modules.Host) error { return nil }
func (a *approvals) Stop(context.Context) error                { return nil }

func (a *approvals) SubscriptionApproved(_ context.Context, owner, contact jid.JID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, owner.String()+" approved "+contact.String())
}

func (a *approvals) got() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

// TestSubscriptionApprovedHook: modules hear once of each approved presence
// subscription (RFC 6121 §3.1.5), with the approving account and the
// contact as bare JIDs, after the contact got the approval; not of a
// request alone, of a "subscribed" that answers no request, nor of a
// request the server answers itself because the subscription exists.
func TestSubscriptionApprovedHook(t *testing.T) {
	rec := &approvals{}
	srv := servertest.StartWith(t, []server.Option{server.WithModules(rec)})
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := srv.RawLogin("alice", "pw", "home")
	bob := srv.RawLogin("bob", "pw", "phone")
	alice.Write(`<presence/>`)
	bob.Write(`<presence/>`)
	syncRaw(alice)
	syncRaw(bob)

	bob.Write(`<presence type='subscribe' to='alice@localhost'/>`)
	alice.Expect(`type="subscribe"`)
	if got := rec.got(); len(got) != 0 {
		t.Fatalf("a request alone: %v", got)
	}
	alice.Write(`<presence type='subscribed' to='bob@localhost'/>`)
	bob.Expect(`type="subscribed"`)
	syncRaw(alice)
	want := []string{"alice@localhost approved bob@localhost"}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("after the approval: %v, want %v", got, want)
	}

	// Nothing pending: no change, no call. A request the subscription
	// already answers: none either.
	alice.Write(`<presence type='subscribed' to='bob@localhost'/>`)
	syncRaw(alice)
	bob.Write(`<presence type='subscribe' to='alice@localhost'/>`)
	syncRaw(bob)
	syncRaw(alice)
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("after a second subscribed and a second request: %v, want %v", got, want)
	}

	// The other way round.
	alice.Write(`<presence type='subscribe' to='bob@localhost'/>`)
	bob.Expect(`type="subscribe"`)
	bob.Write(`<presence type='subscribed' to='alice@localhost'/>`)
	alice.Expect(`type="subscribed"`)
	syncRaw(bob)
	want = append(want, "bob@localhost approved alice@localhost")
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("after bob's approval: %v, want %v", got, want)
	}
}
