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
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// KeySet keeps the public keys of a JWKS URL. Run fetches them at start
// and then on a schedule (the response's Cache-Control max-age, between
// MinRefresh and MaxRefresh), so a key the identity provider removed stops
// verifying within MaxRefresh. Verification only reads the last good set:
// it never waits for a fetch. An unknown key id asks Run for an early
// fetch, at most once per MinRefresh, so a flood of forged kids cannot
// hammer the provider.
type KeySet struct {
	url  string
	o    KeySetOptions
	keys atomic.Pointer[map[string]any]
	kick chan struct{}
}

// KeySetOptions tune fetching; zero values take the defaults.
type KeySetOptions struct {
	Client     *http.Client  // default: 5 s timeout
	MinRefresh time.Duration // least time between fetches (default 30 s)
	MaxRefresh time.Duration // most time between fetches (default 5 min)
	Log        *slog.Logger
}

// NewKeySet returns a key set for url; Run loads and refreshes it.
func NewKeySet(url string, o KeySetOptions) *KeySet {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.MinRefresh <= 0 {
		o.MinRefresh = 30 * time.Second
	}
	if o.MaxRefresh < o.MinRefresh {
		o.MaxRefresh = max(5*time.Minute, o.MinRefresh)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &KeySet{url: url, o: o, kick: make(chan struct{}, 1)}
}

// SetLogger sets where failed refreshes are reported (before Run).
func (k *KeySet) SetLogger(l *slog.Logger) { k.o.Log = l }

// Keyfunc is a jwt.Keyfunc. It never blocks on the network.
func (k *KeySet) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	keys := k.keys.Load()
	if keys == nil {
		k.askRefresh()
		return nil, errors.New("the identity provider's signing keys are not loaded yet")
	}
	if key, ok := lookup(*keys, kid); ok {
		return key, nil
	}
	k.askRefresh() // perhaps a key rotated in since the last fetch
	return nil, fmt.Errorf("unknown key id %q", kid)
}

func (k *KeySet) askRefresh() {
	select {
	case k.kick <- struct{}{}:
	default: // one is already pending
	}
}

func lookup(keys map[string]any, kid string) (any, bool) {
	if kid == "" && len(keys) == 1 {
		for _, key := range keys {
			return key, true
		}
	}
	key, ok := keys[kid]
	return key, ok
}

// Run fetches the keys now and then on schedule, until ctx ends. A failed
// fetch keeps the last good keys (logged) and is retried after MinRefresh.
func (k *KeySet) Run(ctx context.Context) error {
	var last time.Time
	next := time.Now()
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-k.kick:
			t.Stop()
			if early := last.Add(k.o.MinRefresh); time.Now().Before(early) {
				next = minTime(next, early)
				continue
			}
		}
		last = time.Now()
		maxAge, err := k.refresh(ctx)
		if err != nil {
			k.o.Log.Warn("jwks refresh failed; keeping the last keys", "url", k.url, "err", err, "retry_in", k.o.MinRefresh)
			next = last.Add(k.o.MinRefresh)
			continue
		}
		every := k.o.MaxRefresh
		if maxAge >= 0 {
			every = min(max(maxAge, k.o.MinRefresh), k.o.MaxRefresh)
		}
		next = last.Add(every)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
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

// refresh fetches the key set and returns the response's max-age (-1:
// none given).
func (k *KeySet) refresh(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return 0, fmt.Errorf("jwks request: %w", err)
	}
	resp, err := k.o.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("fetch jwks %s: %w", k.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("fetch jwks %s: status %d", k.url, resp.StatusCode)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&doc); err != nil {
		return 0, fmt.Errorf("decode jwks: %w", err)
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
		return 0, errors.New("jwks has no usable signing keys")
	}
	k.keys.Store(&keys)
	return maxAge(resp.Header.Get("Cache-Control")), nil
}

// maxAge reads max-age from a Cache-Control header (-1: absent or bad).
func maxAge(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(d), "=")
		if !ok || !strings.EqualFold(name, "max-age") {
			continue
		}
		secs, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
		if err != nil || secs < 0 || secs > 365*24*3600 {
			return -1
		}
		return time.Duration(secs) * time.Second
	}
	return -1
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
