package c2s_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestClosingStreamCancelsCommand: a command stage runs with the context of
// the requester's stream, so when the stream is closed (here by the
// server ending the session, as end-user-session does) the stage sees its
// context end instead of working on for a client that is gone.
func TestClosingStreamCancelsCommand(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	cmd := adhoc.Command{
		Node:  "urn:example:slow",
		Name:  "Slow",
		Allow: adhoc.Anyone(),
		Complete: func(ctx context.Context, _ *adhoc.Request) (*adhoc.Result, error) {
			close(started)
			select {
			case <-ctx.Done():
				ended <- ctx.Err()
			case <-time.After(20 * time.Second):
				ended <- errors.New("the context did not end")
			}
			return &adhoc.Result{}, nil
		},
	}
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(cmd)})
	srv.AddUser("alice", "pw")
	alice := srv.RawLogin("alice", "pw", "desk")
	alice.Write(`<iq type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:example:slow' action='execute'/></iq>`)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the command never ran")
	}
	if n := srv.EndSessions("alice", "desk", "ended for the test"); n != 1 {
		t.Fatalf("ended %d sessions", n)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the stage's context: %v, want it canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stage never returned")
	}
}
