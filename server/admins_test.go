package server_test

import (
	"context"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// TestAdminsAreLocal: only an account of the server's domain is ever an
// administrator. A JID of another domain (a remote server's, or a
// service's) that the store's list holds is not one; config.yaml's list
// and the bootstrap administrator refuse such a JID before the server
// starts, saying why.
func TestAdminsAreLocal(t *testing.T) {
	cfg := servertest.Config(t.TempDir())
	cfg.Admins = []string{"root@localhost"}
	srv := servertest.StartConfig(t, cfg)
	// edit-admin's list takes any bare JID; IsAdmin does not.
	if err := srv.SetAdmins(context.Background(), []string{"bob@localhost", "boss@remote.example", "root@conference.localhost"}); err != nil {
		t.Fatal(err)
	}
	for j, want := range map[string]bool{
		"root@localhost/laptop":     true,
		"bob@localhost":             true,
		"boss@remote.example":       false,
		"boss@remote.example/pc":    false,
		"root@remote.example":       false,
		"root@conference.localhost": false,
		"eve@localhost":             false,
	} {
		if got := srv.IsAdmin(jid.MustParse(j)); got != want {
			t.Errorf("IsAdmin(%s) = %v, want %v", j, got, want)
		}
	}

	bad := servertest.Config(t.TempDir())
	bad.Admins = []string{"root@localhost", "boss@remote.example"}
	if _, err := server.New(bad); err == nil || !strings.Contains(err.Error(), `admins[1] "boss@remote.example": not an account of this server's domain localhost`) {
		t.Errorf("a remote admin in the configuration: %v", err)
	}
	_, err := server.New(servertest.Config(t.TempDir()), server.WithBootstrapAdmin(jid.MustParse("boss@remote.example"), "pw"))
	if err == nil || !strings.Contains(err.Error(), "bootstrap admin boss@remote.example: not an account of the server's domain localhost") {
		t.Errorf("a remote bootstrap admin: %v", err)
	}
	if _, err := server.New(servertest.Config(t.TempDir()), server.WithBootstrapAdmin(jid.MustParse("root@localhost"), "pw")); err != nil {
		t.Errorf("a local bootstrap admin refused: %v", err)
	}
}
