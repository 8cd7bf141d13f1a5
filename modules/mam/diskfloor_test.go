package mam_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/mam"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// skipLines are the archive's warnings about messages it did not take.
var skipLines = regexp.MustCompile(`(?m)^.*msg="messages not archived".*$`)

// TestArchiveDiskFloor: below limits.min_free_disk_bytes (the floor set
// 1 GiB above the real free space, as modules/offline's TestDiskFloor does)
// the archive takes no message, yet every message is delivered, without a
// stanza-id since none was archived; queries of what was archived before go
// on; the 40 skips (each message in the sender's and the recipient's
// archive) make one warning, not 40. With the floor lowered messages are
// archived again.
func TestArchiveDiskFloor(t *testing.T) {
	floor := servertest.NewDiskFloor(t) // the free-disk floor is the bbolt store's
	dir, st := floor.Dir, floor.Store
	logs := &servertest.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := servertest.StartConfig(t, servertest.Config(dir), server.WithStore(st), server.WithLogger(logger))
	srv.AddUser("alice", "pw")
	srv.AddUser("bob", "pw")
	alice := login(srv, "alice", "a")
	bob := login(srv, "bob", "b")
	sid := regexp.MustCompile(`<stanza-id xmlns="urn:xmpp:sid:0" by="alice@localhost"`)

	bob.raw.Write(`<message to='alice@localhost' type='chat' id='before'><body>before the floor</body></message>`)
	if got := alice.until(t, `id="before".*?</message>`); !sid.MatchString(got) {
		t.Fatalf("a message above the floor was not archived: %s", got)
	}

	floor.Raise()
	const n = 20
	for i := range n {
		bob.raw.Write(fmt.Sprintf(`<message to='alice@localhost' type='chat' id='s%d'><body>below the floor %d</body></message>`, i, i))
	}
	got := alice.until(t, fmt.Sprintf(`id="s%d".*?</message>`, n-1))
	for i := range n {
		if !strings.Contains(got, fmt.Sprintf(`id="s%d"`, i)) || !strings.Contains(got, fmt.Sprintf(`<body>below the floor %d</body>`, i)) {
			t.Errorf("message s%d below the floor was not delivered:\n%s", i, got)
		}
	}
	if sid.MatchString(got) {
		t.Errorf("a message below the floor came with a stanza-id, as if archived:\n%s", got)
	}
	if strings.Contains(got, `type="error"`) {
		t.Errorf("a message below the floor bounced:\n%s", got)
	}
	if _, tx := results(alice.query(t, "", "")); strings.Join(tx, ",") != "before the floor" {
		t.Errorf("alice's archive below the floor: %q, want only the message before", tx)
	}
	if _, tx := results(bob.query(t, "", "")); strings.Join(tx, ",") != "before the floor" {
		t.Errorf("bob's archive below the floor: %q, want only the message before", tx)
	}
	// alice received the last one: the archive had its turn at all 40.
	lines := skipLines.FindAllString(logs.String(), -1)
	if len(lines) != 1 {
		t.Fatalf("%d warnings for %d messages not archived, want 1:\n%s", len(lines), 2*n, logs.String())
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "skipped=1 ") || !strings.Contains(lines[0], "free disk space below the floor") {
		t.Errorf("the warning: %s, want the first skip counted and the floor named", lines[0])
	}

	floor.Lower()
	bob.raw.Write(`<message to='alice@localhost' type='chat' id='after'><body>after the floor</body></message>`)
	if got := alice.until(t, `id="after".*?</message>`); !sid.MatchString(got) {
		t.Errorf("with the floor lowered the message was not archived: %s", got)
	}
	if _, tx := results(alice.query(t, "", "")); strings.Join(tx, ",") != "before the floor,after the floor" {
		t.Errorf("alice's archive with the floor lowered: %q", tx)
	}
}

// host is the part of modules.Host the archive uses, on a real store.
type host struct {
	modules.Host // the rest: not used by the archive of a received message
	cfg          config.Config
	log          *slog.Logger
	store        storage.Store
}

func (h *host) Domain() jid.JID       { return jid.MustParse(h.cfg.Domain) }
func (h *host) Config() config.Config { return h.cfg }
func (h *host) Logger() *slog.Logger  { return h.log }
func (h *host) Store() storage.Store  { return h.store }

// TestArchiveSkipWarningEveryMinute: while messages skip the archive (the
// store below its disk floor) the warning is written at most once a
// minute, counting the messages skipped since the one before: the first at
// once (1), none for the next 59 s, then one with all skipped since.
// Fake time (testing/synctest) stands for the minutes.
func TestArchiveSkipWarningEveryMinute(t *testing.T) {
	servertest.Embedded(t)
	st, err := storage.Open(t.TempDir(), time.Second, storage.WithMinFreeDisk(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &servertest.SyncBuffer{}
	h := &host{cfg: config.Default(), log: slog.New(slog.NewTextHandler(logs, nil)), store: st}
	h.cfg.Domain = "localhost"
	m := mam.New()
	ctx := context.Background()
	if err := m.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop(ctx) })
	in, ok := m.(modules.InboundMessageHook)
	if !ok {
		t.Fatal("the archive does not see received messages")
	}
	el, ok := wire.ParseElement(`<message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/a' type='chat'><body>hi</body></message>`)
	if !ok {
		t.Fatal("the test message does not parse")
	}
	synctest.Test(t, func(t *testing.T) {
		receive := func(k int) {
			t.Helper()
			for range k {
				if out := in.MessageInbound(ctx, modules.Message{El: el, To: jid.MustParse("alice@localhost")}, "alice"); out != nil {
					t.Fatalf("a message below the floor was changed, as if archived: %v", out)
				}
			}
		}
		counts := func() []string {
			var c []string
			for _, l := range skipLines.FindAllString(logs.String(), -1) {
				c = append(c, regexp.MustCompile(`skipped=(\d+)`).FindStringSubmatch(l)[1])
			}
			return c
		}
		receive(5)
		if c := counts(); strings.Join(c, ",") != "1" {
			t.Fatalf("after 5 skips: warnings counting %q, want one counting 1", c)
		}
		time.Sleep(59 * time.Second)
		receive(3)
		if c := counts(); strings.Join(c, ",") != "1" {
			t.Fatalf("59 s later, 3 more: warnings counting %q, want still one", c)
		}
		time.Sleep(2 * time.Second)
		receive(1)
		if c := counts(); strings.Join(c, ",") != "1,8" {
			t.Fatalf("a minute after the first warning: warnings counting %q, want a second counting 4+3+1", c)
		}
		time.Sleep(10 * time.Minute)
		receive(2)
		if c := counts(); strings.Join(c, ",") != "1,8,1" {
			t.Fatalf("after a quiet 10 minutes: warnings counting %q, want a third counting 1 at once", c)
		}
	})
}
