package modules_test

import (
	"context"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/modules"
)

// TestServiceItems: services registered with ServiceItem are the items of
// the server's root node, in the order they started, and serve no node of
// the server JID.
func TestServiceItems(t *testing.T) {
	var d modules.Disco
	muc, upload := jid.MustParse("muc.localhost"), jid.MustParse("upload.localhost")
	d.AddNodeHandler(modules.ServiceItem{JID: muc, Name: "Chatrooms"})
	d.AddNodeHandler(modules.ServiceItem{JID: upload})
	ctx, requester := context.Background(), jid.MustParse("alice@localhost/pc")
	its, err := d.Items(ctx, requester, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(its) != 2 || !its[0].JID.Equal(muc) || its[0].Name != "Chatrooms" || !its[1].JID.Equal(upload) || its[1].Name != "" {
		t.Fatalf("items %+v", its)
	}
	if _, err := d.Items(ctx, requester, "muc"); !errors.Is(err, modules.ErrNoNode) {
		t.Fatalf("items of a node: %v, want ErrNoNode", err)
	}
	if _, err := d.Info(ctx, requester, "muc"); !errors.Is(err, modules.ErrNoNode) {
		t.Fatalf("info of a node: %v, want ErrNoNode", err)
	}
}
