package auth

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"

	"github.com/xdg-go/scram"

	"github.com/adhocd/adhocd/storage"
)

// SaltSize is the length in bytes of a new account's SCRAM salt.
const SaltSize = 16

// NewCredentials derives the SCRAM-SHA-1 and SCRAM-SHA-256 credentials of a
// password with a fresh random salt each. The password itself is not kept.
func NewCredentials(password string, iterations int) (sha1Cred, sha256Cred storage.Credential, err error) {
	if password == "" {
		return sha1Cred, sha256Cred, fmt.Errorf("auth: empty password")
	}
	sha1Cred, err = derive(scram.SHA1, password, iterations, nil)
	if err != nil {
		return sha1Cred, sha256Cred, err
	}
	sha256Cred, err = derive(scram.SHA256, password, iterations, nil)
	return sha1Cred, sha256Cred, err
}

// SetPassword replaces the credentials of a with those of password.
func SetPassword(a *storage.Account, password string, iterations int) error {
	s1, s256, err := NewCredentials(password, iterations)
	if err != nil {
		return err
	}
	a.SHA1, a.SHA256 = s1, s256
	return nil
}

// VerifyPassword reports whether password matches the account's SCRAM-SHA-256
// credential (used by PLAIN), in constant time.
func VerifyPassword(a storage.Account, password string) bool {
	c := a.SHA256
	if len(c.Salt) == 0 {
		return false
	}
	got, err := derive(scram.SHA256, password, c.Iterations, c.Salt)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got.StoredKey, c.StoredKey) == 1
}

func derive(h scram.HashGeneratorFcn, password string, iterations int, salt []byte) (storage.Credential, error) {
	if salt == nil {
		salt = make([]byte, SaltSize)
		if _, err := rand.Read(salt); err != nil {
			return storage.Credential{}, fmt.Errorf("auth: salt: %w", err)
		}
	}
	// The username takes no part in key derivation; SASLprep of the password
	// is applied by the client constructor as RFC 5802 requires.
	c, err := h.NewClient("user", password, "")
	if err != nil {
		return storage.Credential{}, fmt.Errorf("auth: prepare password: %w", err)
	}
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return storage.Credential{}, fmt.Errorf("auth: derive keys: %w", err)
	}
	return storage.Credential{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  sc.StoredKey,
		ServerKey:  sc.ServerKey,
	}, nil
}

func hashFor(mech string) (scram.HashGeneratorFcn, func(storage.Account) storage.Credential) {
	switch mech {
	case SCRAMSHA1, SCRAMSHA1Plus:
		return scram.HashGeneratorFcn(sha1.New), func(a storage.Account) storage.Credential { return a.SHA1 }
	default:
		return scram.HashGeneratorFcn(sha256.New), func(a storage.Account) storage.Credential { return a.SHA256 }
	}
}
