package storagetest

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/storage"
)

var userDataCases = []testCase{
	{"Prefixes", testUserDataPrefixes},
	{"Datum", testUserDataDatum},
	{"Update", testUserDataUpdate},
	{"UpdateAbort", testUserDataUpdateAbort},
	{"UpdateOutsidePrefix", testUserDataUpdateOutsidePrefix},
	{"UnknownAccount", testUserDataUnknownAccount},
	{"Buckets", testUserDataBuckets},
	{"Size", testUserDataSize},
}

// awkwardKeys are keys with NUL and 0xff bytes, and prefixes of one
// another: a store that keeps keys as text, compares them by a collation or
// finds a prefix's entries by a range whose end it gets by adding one to
// the last byte gets some of them wrong.
var awkwardKeys = []string{
	"b", "a\xff\xff", "a", "\xff", "a\x00b", "ab", "a\xff", "\xff\xff\x01", "a\x00", "a\xff\x00", "\xff\xff", "a\xfe\xff", "urn:xmpp:avatar:data/abc",
}

// awkwardValue is the value the cases keep under key: bytes, not text.
func awkwardValue(key string) []byte { return []byte("\x00v:" + key + "\xff\x00") }

// entries returns the entries of keys (each with awkwardValue) that start
// with prefix, ordered by the bytes of the key.
func entries(keys []string, prefix string) []storage.Datum {
	var out []storage.Datum
	for _, k := range slices.Sorted(slices.Values(keys)) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, storage.Datum{Key: k, Value: awkwardValue(k)})
		}
	}
	return out
}

// putAwkward writes awkwardKeys into the account's bucket.
func putAwkward(t *testing.T, ctx context.Context, s storage.Store, username, bucket string) {
	t.Helper()
	var ds []storage.Datum
	for _, k := range awkwardKeys {
		ds = append(ds, storage.Datum{Key: k, Value: awkwardValue(k)})
	}
	putData(t, ctx, s, username, bucket, ds...)
}

// testUserDataPrefixes: UserData and UserDataKeys return exactly the
// entries whose keys start with the prefix, ordered by the bytes of the
// key: prefixes ending in NUL or 0xff and all-0xff ones included.
func testUserDataPrefixes(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	putAwkward(t, ctx, s, "alice", "pep")
	prefixes := []string{"", "a", "a\x00", "a\xfe", "a\xff", "a\xff\xff", "\xff", "\xff\xff", "\xff\xff\x01", "urn:", "c", "a\xff\xff\xff", "\xff\xff\xff"}
	for _, p := range prefixes {
		want := entries(awkwardKeys, p)
		checkData(t, ctx, s, "alice", "pep", p, want)
		keys, err := s.UserDataKeys(ctx, "alice", "pep", p)
		must(t, err, "UserDataKeys")
		var wantKeys []string
		for _, d := range want {
			wantKeys = append(wantKeys, d.Key)
		}
		if !slices.Equal(keys, wantKeys) {
			t.Fatalf("UserDataKeys(prefix %q):\n got  %q\n want %q", p, keys, wantKeys)
		}
	}
	// And the prefix fn gets in UpdateUserData is the same selection.
	for _, p := range []string{"a\xff", "\xff\xff", ""} {
		err := s.UpdateUserData(ctx, "alice", "pep", p, func(cur []storage.Datum) ([]storage.Datum, error) {
			if want := entries(awkwardKeys, p); !slices.EqualFunc(cur, want, datumEqual) {
				t.Errorf("UpdateUserData(prefix %q) gave fn\n %q\nwant\n %q", p, cur, want)
			}
			return nil, nil
		})
		must(t, err, "UpdateUserData")
	}
}

// testUserDataDatum: UserDatum returns the value under exactly that key,
// or ErrNotFound for a key, a bucket or an account that has none.
func testUserDataDatum(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	putAwkward(t, ctx, s, "alice", "pep")
	for _, k := range awkwardKeys {
		v, err := s.UserDatum(ctx, "alice", "pep", k)
		must(t, err, "UserDatum")
		if !datumEqual(storage.Datum{Key: k, Value: v}, storage.Datum{Key: k, Value: awkwardValue(k)}) {
			t.Fatalf("UserDatum(%q) = %q, want %q", k, v, awkwardValue(k))
		}
	}
	for _, k := range []string{"a\x00b\x00", "a\xff\xff\xff", "c", "\xfe", "A"} {
		_, err := s.UserDatum(ctx, "alice", "pep", k)
		wantErr(t, err, storage.ErrNotFound, "UserDatum of absent key "+strconv.Quote(k))
	}
	_, err := s.UserDatum(ctx, "alice", "vcard", "a")
	wantErr(t, err, storage.ErrNotFound, "UserDatum of a bucket never written")
	_, err = s.UserDatum(ctx, "nobody", "pep", "a")
	wantErr(t, err, storage.ErrNotFound, "UserDatum of an unknown account")
}

// testUserDataUpdate: fn gets the entries under the prefix, ordered; its
// changes are written, a nil Value deleting; entries outside the prefix
// stay.
func testUserDataUpdate(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	putData(t, ctx, s, "alice", "pep",
		storage.Datum{Key: "node/c", Value: []byte("c")}, storage.Datum{Key: "node/a", Value: []byte("a")},
		storage.Datum{Key: "node/b", Value: []byte("b")}, storage.Datum{Key: "other", Value: []byte("o")},
		storage.Datum{Key: "node", Value: []byte("n")})
	err := s.UpdateUserData(ctx, "alice", "pep", "node/", func(cur []storage.Datum) ([]storage.Datum, error) {
		want := []storage.Datum{{Key: "node/a", Value: []byte("a")}, {Key: "node/b", Value: []byte("b")}, {Key: "node/c", Value: []byte("c")}}
		if !slices.EqualFunc(cur, want, datumEqual) {
			t.Errorf("fn got %q, want %q", cur, want)
		}
		return []storage.Datum{
			{Key: "node/b", Value: nil},
			{Key: "node/a", Value: []byte("A\x00")},
			{Key: "node/d", Value: []byte{0xff}},
			{Key: "node/zz", Value: nil}, // not there: nothing to delete
		}, nil
	})
	must(t, err, "UpdateUserData")
	checkData(t, ctx, s, "alice", "pep", "", []storage.Datum{
		{Key: "node", Value: []byte("n")},
		{Key: "node/a", Value: []byte("A\x00")},
		{Key: "node/c", Value: []byte("c")},
		{Key: "node/d", Value: []byte{0xff}},
		{Key: "other", Value: []byte("o")},
	})
	_, err = s.UserDatum(ctx, "alice", "pep", "node/b")
	wantErr(t, err, storage.ErrNotFound, "UserDatum of a deleted key")
	// No changes: nothing happens. Every entry deleted: none left.
	must(t, s.UpdateUserData(ctx, "alice", "pep", "", func([]storage.Datum) ([]storage.Datum, error) { return nil, nil }), "UpdateUserData with no change")
	err = s.UpdateUserData(ctx, "alice", "pep", "", func(cur []storage.Datum) ([]storage.Datum, error) {
		var del []storage.Datum
		for _, d := range cur {
			del = append(del, storage.Datum{Key: d.Key})
		}
		return del, nil
	})
	must(t, err, "UpdateUserData deleting all")
	checkData(t, ctx, s, "alice", "pep", "", nil)
}

// testUserDataUpdateAbort: an error from fn is returned and none of the
// changes it returned with it are written.
func testUserDataUpdateAbort(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	before := []storage.Datum{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}
	putData(t, ctx, s, "alice", "pep", before...)
	err := s.UpdateUserData(ctx, "alice", "pep", "", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "a", Value: nil}, {Key: "b", Value: []byte("changed")}, {Key: "c", Value: []byte("new")}}, errBoom
	})
	wantErr(t, err, errBoom, "UpdateUserData with a failing fn")
	checkData(t, ctx, s, "alice", "pep", "", before)
}

// testUserDataUpdateOutsidePrefix: a change to a key outside the prefix is
// an error and none of the changes are written, those inside neither.
func testUserDataUpdateOutsidePrefix(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice")
	before := []storage.Datum{{Key: "node/a", Value: []byte("1")}, {Key: "other", Value: []byte("2")}, {Key: "a\xff", Value: []byte("3")}}
	putData(t, ctx, s, "alice", "pep", before...)
	cases := []struct {
		prefix  string
		changes []storage.Datum
	}{
		{"node/", []storage.Datum{{Key: "node/b", Value: []byte("in")}, {Key: "other", Value: []byte("out")}}},
		{"node/", []storage.Datum{{Key: "node/a", Value: nil}, {Key: "other", Value: nil}}},
		{"node/", []storage.Datum{{Key: "node", Value: []byte("the prefix less a byte")}}},
		{"a\xff", []storage.Datum{{Key: "a\xff\x00", Value: []byte("in")}, {Key: "a", Value: []byte("out")}}},
		{"a\xff", []storage.Datum{{Key: "b", Value: []byte("out")}}},
	}
	for _, c := range cases {
		err := s.UpdateUserData(ctx, "alice", "pep", c.prefix, func([]storage.Datum) ([]storage.Datum, error) { return c.changes, nil })
		if err == nil {
			t.Fatalf("UpdateUserData(prefix %q) wrote %q", c.prefix, c.changes)
		}
		checkData(t, ctx, s, "alice", "pep", "", []storage.Datum{before[2], before[0], before[1]})
	}
}

// testUserDataUnknownAccount: an account that does not exist has no user
// data to change (ErrNotFound) and one made later under the name starts
// with none.
func testUserDataUnknownAccount(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	err := s.UpdateUserData(ctx, "ghost", "pep", "", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "k", Value: []byte("v")}}, nil
	})
	wantErr(t, err, storage.ErrNotFound, "UpdateUserData of an unknown account")
	createAccounts(t, ctx, s, "ghost")
	checkData(t, ctx, s, "ghost", "pep", "", nil)
}

// testUserDataBuckets: each bucket, and each account, has its own keys,
// whatever the names (one bucket's name a prefix of another's).
func testUserDataBuckets(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob", "alicea")
	for _, b := range []string{"pe", "pep", "pep2", "vcard"} {
		putData(t, ctx, s, "alice", b, storage.Datum{Key: "k", Value: []byte("alice " + b)}, storage.Datum{Key: "k" + b, Value: []byte(b)})
		putData(t, ctx, s, "bob", b, storage.Datum{Key: "k", Value: []byte("bob " + b)})
	}
	// A bucket and key that together spell another pair.
	putData(t, ctx, s, "alicea", "p", storage.Datum{Key: "epk", Value: []byte("alicea p")})
	for _, b := range []string{"pe", "pep", "pep2", "vcard"} {
		checkData(t, ctx, s, "alice", b, "", []storage.Datum{{Key: "k", Value: []byte("alice " + b)}, {Key: "k" + b, Value: []byte(b)}})
		checkData(t, ctx, s, "bob", b, "", []storage.Datum{{Key: "k", Value: []byte("bob " + b)}})
	}
	checkData(t, ctx, s, "alicea", "pep", "", nil)
	checkData(t, ctx, s, "alice", "p", "", nil)
	// Deleting in one bucket leaves the others.
	putData(t, ctx, s, "alice", "pep", storage.Datum{Key: "k"})
	checkData(t, ctx, s, "alice", "pep", "", []storage.Datum{{Key: "kpep", Value: []byte("pep")}})
	checkData(t, ctx, s, "alice", "pe", "", []storage.Datum{{Key: "k", Value: []byte("alice pe")}, {Key: "kpe", Value: []byte("pe")}})
	checkData(t, ctx, s, "alice", "pep2", "", []storage.Datum{{Key: "k", Value: []byte("alice pep2")}, {Key: "kpep2", Value: []byte("pep2")}})
	checkData(t, ctx, s, "bob", "pep", "", []storage.Datum{{Key: "k", Value: []byte("bob pep")}})
}

// testUserDataSize: UserDataSize counts the bytes of the keys and values of
// one bucket of one account, following every change.
func testUserDataSize(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	createAccounts(t, ctx, s, "alice", "bob")
	check := func(user, bucket string, want int64) {
		t.Helper()
		n, err := s.UserDataSize(ctx, user, bucket)
		must(t, err, "UserDataSize")
		if n != want {
			t.Fatalf("UserDataSize(%q, %q) = %d, want %d", user, bucket, n, want)
		}
	}
	check("alice", "pep", 0)
	putAwkward(t, ctx, s, "alice", "pep")
	var want int64
	for _, k := range awkwardKeys {
		want += int64(len(k) + len(awkwardValue(k)))
	}
	check("alice", "pep", want)
	putData(t, ctx, s, "alice", "pep2", storage.Datum{Key: "abc", Value: []byte("0123456789")})
	putData(t, ctx, s, "bob", "pep", storage.Datum{Key: "x", Value: []byte("y")})
	check("alice", "pep", want)
	check("alice", "pep2", 13)
	check("bob", "pep", 2)
	// A value replaced by a shorter one, and a deletion.
	putData(t, ctx, s, "alice", "pep2", storage.Datum{Key: "abc", Value: []byte("0")})
	check("alice", "pep2", 4)
	putData(t, ctx, s, "alice", "pep", storage.Datum{Key: "a"})
	check("alice", "pep", want-int64(1+len(awkwardValue("a"))))
	check("alice", "never", 0)
}

// counterValue reads the decimal counter kept under key in cur, 0 if
// absent.
func counterValue(t *testing.T, cur []storage.Datum, key string) int {
	for _, d := range cur {
		if d.Key == key {
			n, err := strconv.Atoi(string(d.Value))
			if err != nil {
				t.Errorf("counter %q holds %q", key, d.Value)
			}
			return n
		}
	}
	return 0
}
