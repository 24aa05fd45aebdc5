package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of the master encryption key (AES-256).
const KeySize = 32

// boxVersion prefixes every sealed value so the format (and later the key)
// can change without guessing.
const boxVersion byte = 1

// ErrDecrypt is returned when a sealed value cannot be opened: wrong key,
// tampering, or a value sealed for another purpose.
var ErrDecrypt = errors.New("secrets: cannot decrypt value (wrong key or tampered data)")

// Box encrypts secrets at rest with AES-256-GCM under the master key from
// configuration.
type Box struct {
	aead cipher.AEAD
	rand io.Reader
}

// NewBox returns a Box for a 32-byte key; rand supplies nonces.
func NewBox(key []byte, rand io.Reader) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets: encryption key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead, rand: rand}, nil
}

// Seal encrypts plaintext. context binds the ciphertext to its purpose and
// owner (for example "apikey:"+keyID) so a sealed value copied to another row
// fails to open.
func (b *Box) Seal(plaintext []byte, context string) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := io.ReadFull(b.rand, nonce); err != nil {
		return nil, fmt.Errorf("secrets: read random: %w", err)
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+b.aead.Overhead())
	out = append(out, boxVersion)
	out = append(out, nonce...)
	return b.aead.Seal(out, nonce, plaintext, []byte(context)), nil
}

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	ns := b.aead.NonceSize()
	if len(sealed) < 1+ns+b.aead.Overhead() || sealed[0] != boxVersion {
		return nil, ErrDecrypt
	}
	pt, err := b.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(context))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// ParseKey decodes a base64 (standard or URL alphabet) master key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("encryption key must decode to %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("encryption key is not valid base64")
}

// LoadOrCreateKeyFile reads a base64 master key from path, creating the file
// (mode 0600) with a fresh random key when it does not exist. It is how the
// embedded default gets a key without configuration.
func LoadOrCreateKeyFile(path string, rand io.Reader) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return ParseKey(string(data))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		return nil, err
	}
	return key, f.Sync()
}
