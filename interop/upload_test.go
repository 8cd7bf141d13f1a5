package interop_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppUpload runs slixmpp 1.8.3's own XEP-0363 plugin (xep_0363)
// against adhocd's upload service: upload_file finds the service through
// the server's disco#items and its disco#info (store/file and the
// feature), reads max-file-size from its form, gets a slot and PUTs the
// file with aiohttp; the script GETs the URL back and the bytes and type
// are the file's. A file over max-file-size is refused by the plugin from
// what disco said.
func TestSlixmppUpload(t *testing.T) {
	requireSlixmpp(t)
	// The plugin PUTs with aiohttp, which it imports when it loads.
	requirePython(t, "aiohttp", "import aiohttp; from slixmpp.plugins.xep_0363 import XEP_0363", "python3-aiohttp")
	// The slots' URLs must reach the listener from the script: the public
	// URL is its loopback address.
	addr := servertest.FreeAddr(t)
	const maxSize = 1 << 20
	srv := servertest.Start(t, func(c *config.Config) {
		c.HTTPUpload.Enabled = true
		c.HTTPUpload.Listen = addr
		c.HTTPUpload.PublicURL = "http://" + addr + "/files"
		c.HTTPUpload.MaxFileBytes = maxSize
	})
	const pw = "upload-alice"
	jid := srv.AddUser("alice", pw)
	data := make([]byte, 300<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	file := tempFile(t, "holiday photo.png", data)
	sum := sha256.Sum256(data)

	args := append(serverArgs(t, srv), "--jid", jid, "--password", pw, "--file", file, "--timeout", "40")
	lines := runScript(t, 60*time.Second, "slixmpp_upload.py", withDebug(args, "UPLOAD_DEBUG")...)
	got := map[string]string{}
	ok := scanLines(lines, func(word, rest string) { got[word] = rest })
	if !ok {
		t.Fatalf("the script did not print OK:\n%s", quoteLines(lines))
	}
	want := map[string]string{
		"SERVICE":       "upload.localhost",
		"MAX_FILE_SIZE": strconv.Itoa(maxSize),
		"GOT":           "200 image/png " + strconv.Itoa(len(data)) + " " + hex.EncodeToString(sum[:]),
		"TOO_BIG":       "File size too large: " + strconv.Itoa(maxSize+1) + " (max: " + strconv.Itoa(maxSize) + " bytes)",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %q, want %q", k, got[k], v)
		}
	}
	if u := got["URL"]; !strings.HasPrefix(u, "http://"+addr+"/files/") || !strings.HasSuffix(u, "/holiday%20photo.png") {
		t.Errorf("URL %q: want the public URL, a token and the file name", u)
	}
}
