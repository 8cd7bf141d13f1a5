package auth_test

import (
	"bytes"
	"testing"

	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/storage"
)

func TestCredentials(t *testing.T) {
	var a storage.Account
	if err := auth.SetPassword(&a, "correct horse", 4096); err != nil {
		t.Fatal(err)
	}
	if !auth.VerifyPassword(a, "correct horse") {
		t.Fatal("the right password was refused")
	}
	if auth.VerifyPassword(a, "correct horse ") || auth.VerifyPassword(a, "") {
		t.Fatal("a wrong password was accepted")
	}
	if len(a.SHA1.StoredKey) != 20 || len(a.SHA256.StoredKey) != 32 || a.SHA256.Iterations != 4096 {
		t.Fatalf("credential shapes: %d %d %d", len(a.SHA1.StoredKey), len(a.SHA256.StoredKey), a.SHA256.Iterations)
	}
	if bytes.Equal(a.SHA1.Salt, a.SHA256.Salt) {
		t.Fatal("both credentials share a salt")
	}
	var b storage.Account
	if err := auth.SetPassword(&b, "correct horse", 4096); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.SHA256.StoredKey, b.SHA256.StoredKey) {
		t.Fatal("the same password gave the same stored key twice: salts are not random")
	}
	if err := auth.SetPassword(&b, "", 4096); err == nil {
		t.Fatal("an empty password was accepted")
	}
}
