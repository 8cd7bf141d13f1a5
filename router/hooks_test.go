package router_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

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
