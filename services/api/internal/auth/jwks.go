package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// KeySet fetches and caches the public keys of a JWKS URL. An unknown key
// id triggers a refresh (identity providers rotate keys), at most once per
// MinRefresh so a flood of forged kids cannot hammer the provider.
type KeySet struct {
	url        string
	client     *http.Client
	minRefresh time.Duration

	mu      sync.Mutex
	keys    map[string]any
	fetched time.Time
}

// NewKeySet returns a key set for url; keys are fetched on first use.
func NewKeySet(url string, client *http.Client, minRefresh time.Duration) *KeySet {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	if minRefresh == 0 {
		minRefresh = time.Minute
	}
	return &KeySet{url: url, client: client, minRefresh: minRefresh, keys: map[string]any{}}
}

// Keyfunc is a jwt.Keyfunc.
func (k *KeySet) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	if time.Since(k.fetched) < k.minRefresh && !k.fetched.IsZero() {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	if err := k.refresh(context.Background()); err != nil {
		return nil, err
	}
	if key, ok := k.lookup(kid); ok {
		return key, nil
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

func (k *KeySet) lookup(kid string) (any, bool) {
	if kid == "" && len(k.keys) == 1 {
		for _, key := range k.keys {
			return key, true
		}
	}
	key, ok := k.keys[kid]
	return key, ok
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

func (k *KeySet) refresh(ctx context.Context) error {
	k.fetched = time.Now()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("jwks request: %w", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks %s: %w", k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks %s: status %d", k.url, resp.StatusCode)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&doc); err != nil {
		return fmt.Errorf("decode jwks: %w", err)
	}
	keys := map[string]any{}
	for _, j := range doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		key, err := j.publicKey()
		if err != nil {
			continue // an unusable key must not hide the usable ones
		}
		keys[j.Kid] = key
	}
	if len(keys) == 0 {
		return errors.New("jwks has no usable signing keys")
	}
	k.keys = keys
	return nil
}

func (j jwk) publicKey() (any, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64int(j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64int(j.E)
		if err != nil {
			return nil, err
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %q", j.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(j.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := base64.RawURLEncoding.DecodeString(j.Y)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) > size || len(y) > size {
			return nil, fmt.Errorf("coordinates too long for %s", j.Crv)
		}
		// Uncompressed point: 0x04 || X || Y, each left-padded to the size.
		point := make([]byte, 1+2*size)
		point[0] = 4
		copy(point[1+size-len(x):1+size], x)
		copy(point[1+2*size-len(y):], y)
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	}
	return nil, fmt.Errorf("key type %q", j.Kty)
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("base64url: %w", err)
	}
	return new(big.Int).SetBytes(b), nil
}
