package storage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/storage"
)

// TestUserData: a module's entries per account are read back, listed by
// prefix in key order, changed atomically, counted, refused for an unknown
// account, and removed with the account while another account's stay.
func TestUserData(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	for _, u := range []string{"alice", "bob"} {
		if err := st.CreateAccount(ctx, storage.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(user, bucket string, d ...storage.Datum) {
		t.Helper()
		if err := st.UpdateUserData(ctx, user, bucket, "", func([]storage.Datum) ([]storage.Datum, error) { return d, nil }); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", "pep", storage.Datum{Key: "node/b", Value: []byte("2")}, storage.Datum{Key: "node/a", Value: []byte("1")}, storage.Datum{Key: "other", Value: []byte("3")})
	put("bob", "pep", storage.Datum{Key: "node/a", Value: []byte("bob's")})

	if v, err := st.UserDatum(ctx, "alice", "pep", "node/a"); err != nil || string(v) != "1" {
		t.Fatalf("UserDatum = %q, %v; want 1", v, err)
	}
	if _, err := st.UserDatum(ctx, "alice", "pep", "nothing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing key: %v, want ErrNotFound", err)
	}
	if _, err := st.UserDatum(ctx, "alice", "vcard", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("missing bucket: %v, want ErrNotFound", err)
	}
	got, err := st.UserData(ctx, "alice", "pep", "node/")
	if err != nil || len(got) != 2 || got[0].Key != "node/a" || got[1].Key != "node/b" {
		t.Fatalf("UserData(node/) = %+v, %v; want node/a, node/b", got, err)
	}
	if keys, err := st.UserDataKeys(ctx, "alice", "pep", "node/"); err != nil || strings.Join(keys, " ") != "node/a node/b" {
		t.Fatalf("UserDataKeys(node/) = %q, %v", keys, err)
	}
	if n, err := st.UserDataSize(ctx, "alice", "pep"); err != nil || n != int64(len("node/a1node/b2other3")) {
		t.Fatalf("UserDataSize = %d, %v", n, err)
	}

	// Read-modify-write sees the current entries; nil deletes; an error aborts.
	err = st.UpdateUserData(ctx, "alice", "pep", "node/", func(cur []storage.Datum) ([]storage.Datum, error) {
		if len(cur) != 2 {
			t.Errorf("fn saw %d entries, want 2", len(cur))
		}
		return []storage.Datum{{Key: "node/a"}, {Key: "node/c", Value: []byte("4")}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := st.UpdateUserData(ctx, "alice", "pep", "", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "node/b"}}, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("aborted update: %v", err)
	}
	if err := st.UpdateUserData(ctx, "alice", "pep", "node/", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "elsewhere", Value: []byte("x")}}, nil
	}); err == nil {
		t.Fatal("a change outside the prefix was accepted")
	}
	got, _ = st.UserData(ctx, "alice", "pep", "")
	keys := ""
	for _, d := range got {
		keys += d.Key + "=" + string(d.Value) + " "
	}
	if keys != "node/b=2 node/c=4 other=3 " {
		t.Fatalf("after the changes: %s", keys)
	}

	if err := st.UpdateUserData(ctx, "nobody", "pep", "", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "k", Value: []byte("v")}}, nil
	}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown account: %v, want ErrNotFound", err)
	}

	if _, err := st.DeleteAccount(ctx, "alice", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, storage.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.UserData(ctx, "alice", "pep", ""); len(got) != 0 {
		t.Fatalf("a new alice sees the old one's data: %+v", got)
	}
	if v, err := st.UserDatum(ctx, "bob", "pep", "node/a"); err != nil || string(v) != "bob's" {
		t.Fatalf("bob's data after alice's deletion: %q, %v", v, err)
	}
}

// TestUserDataDiskFloor: below the free-disk floor writes are refused with
// ErrNoSpace while deletions and reads go on.
func TestUserDataDiskFloor(t *testing.T) {
	ctx := context.Background()
	st, err := storage.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateAccount(ctx, storage.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	set := func(v []byte) error {
		return st.UpdateUserData(ctx, "alice", "vcard", "", func([]storage.Datum) ([]storage.Datum, error) {
			return []storage.Datum{{Key: "vcard", Value: v}}, nil
		})
	}
	if err := set([]byte("<vCard/>")); err != nil {
		t.Fatal(err)
	}
	st.SetMinFreeDisk(1 << 62)
	if err := set([]byte("<vCard><FN>A</FN></vCard>")); !errors.Is(err, storage.ErrNoSpace) {
		t.Fatalf("write below the floor: %v, want ErrNoSpace", err)
	}
	if v, err := st.UserDatum(ctx, "alice", "vcard", "vcard"); err != nil || string(v) != "<vCard/>" {
		t.Fatalf("read below the floor: %q, %v", v, err)
	}
	if err := set(nil); err != nil {
		t.Fatalf("deletion below the floor: %v", err)
	}
}
