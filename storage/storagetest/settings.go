package storagetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/adhocd/adhocd/storage"
)

var settingCases = []testCase{
	{"NotFound", testSettingNotFound},
	{"PutGet", testSettingPutGet},
	{"Overwrite", testSettingOverwrite},
	{"Delete", testSettingDelete},
	{"Binary", testSettingBinary},
}

// testSettingNotFound: a key never written is ErrNotFound.
func testSettingNotFound(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	_, err := s.Setting(ctx, storage.SettingMOTD)
	wantErr(t, err, storage.ErrNotFound, "Setting of a new store")
}

// checkSetting fails the test unless key holds want.
func checkSetting(t *testing.T, ctx context.Context, s storage.Store, key string, want []byte) {
	t.Helper()
	got, err := s.Setting(ctx, key)
	must(t, err, "Setting("+key+")")
	if !bytes.Equal(got, want) {
		t.Fatalf("Setting(%q) = %q, want %q", key, got, want)
	}
}

// testSettingPutGet: each key keeps its own value; keys that are prefixes
// of one another are distinct.
func testSettingPutGet(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	values := map[string][]byte{
		storage.SettingMOTD:    []byte(`{"text":"Hello","version":3}`),
		storage.SettingWelcome: []byte("Welcome ☃"),
		"motd2":                []byte("other"),
		"mot":                  []byte("shorter"),
	}
	for k, v := range values {
		must(t, s.PutSetting(ctx, k, v), "PutSetting("+k+")")
	}
	for k, v := range values {
		checkSetting(t, ctx, s, k, v)
	}
	_, err := s.Setting(ctx, "motd3")
	wantErr(t, err, storage.ErrNotFound, "Setting of a key never written")
}

// testSettingOverwrite: a second put replaces the value, a shorter one
// too.
func testSettingOverwrite(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	must(t, s.PutSetting(ctx, storage.SettingMOTD, []byte("a long first value")), "PutSetting")
	must(t, s.PutSetting(ctx, storage.SettingMOTD, []byte("short")), "PutSetting again")
	checkSetting(t, ctx, s, storage.SettingMOTD, []byte("short"))
}

// testSettingDelete: a nil value deletes the key and leaves the others;
// deleting a key that is not there is no error.
func testSettingDelete(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	must(t, s.PutSetting(ctx, storage.SettingMOTD, []byte("motd")), "PutSetting")
	must(t, s.PutSetting(ctx, storage.SettingWelcome, []byte("welcome")), "PutSetting")
	must(t, s.PutSetting(ctx, storage.SettingMOTD, nil), "PutSetting(nil)")
	_, err := s.Setting(ctx, storage.SettingMOTD)
	wantErr(t, err, storage.ErrNotFound, "Setting after its deletion")
	checkSetting(t, ctx, s, storage.SettingWelcome, []byte("welcome"))
	must(t, s.PutSetting(ctx, "never-written", nil), "PutSetting(nil) of an absent key")
	must(t, s.PutSetting(ctx, storage.SettingMOTD, []byte("again")), "PutSetting after a deletion")
	checkSetting(t, ctx, s, storage.SettingMOTD, []byte("again"))
}

// testSettingBinary: values are bytes, not text: NUL, 0xff and invalid
// UTF-8 come back as they were.
func testSettingBinary(t *testing.T, open opener) {
	s := open(t)
	ctx := testContext(t)
	all := make([]byte, 0, 512)
	for i := range 512 {
		all = append(all, byte(i))
	}
	values := map[string][]byte{
		"all-bytes":  all,
		"nul":        {0},
		"nul-inside": []byte("a\x00b\x00"),
		"high":       {0xff, 0xfe, 0xc0, 0x80},
	}
	for k, v := range values {
		must(t, s.PutSetting(ctx, k, v), "PutSetting("+k+")")
	}
	for k, v := range values {
		checkSetting(t, ctx, s, k, v)
	}
}
