package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var secret = []byte(strings.Repeat("s", 32))

func TestHS256(t *testing.T) {
	v, err := NewHS256(secret, Options{RolesClaim: "realm_access.roles", Issuer: "berth-test"})
	require.NoError(t, err)
	iss := NewIssuer(secret, Options{RolesClaim: "realm_access.roles", Issuer: "berth-test"})
	now := time.Now()

	tok, err := iss.Issue("alice", []string{"admin"}, now, time.Hour)
	require.NoError(t, err)
	p, err := v.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, Principal{Subject: "alice", Roles: []string{"admin"}, Admin: true, User: true}, p)

	expired, _ := iss.Issue("alice", []string{"user"}, now.Add(-2*time.Hour), time.Hour)
	_, err = v.Verify(expired)
	assert.ErrorIs(t, err, ErrExpired)

	other := NewIssuer([]byte(strings.Repeat("x", 32)), Options{RolesClaim: "realm_access.roles", Issuer: "berth-test"})
	forged, _ := other.Issue("alice", []string{"admin"}, now, time.Hour)
	_, err = v.Verify(forged)
	assert.ErrorIs(t, err, ErrInvalid)

	wrongIss, _ := NewIssuer(secret, Options{RolesClaim: "realm_access.roles", Issuer: "elsewhere"}).Issue("alice", nil, now, time.Hour)
	_, err = v.Verify(wrongIss)
	assert.ErrorIs(t, err, ErrInvalid)

	_, err = v.Verify("")
	assert.ErrorIs(t, err, ErrMissing)

	// alg "none" and tokens without exp are refused.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	_, err = v.Verify(none)
	assert.ErrorIs(t, err, ErrInvalid)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "iss": "berth-test"}).SignedString(secret)
	_, err = v.Verify(noExp)
	assert.ErrorIs(t, err, ErrInvalid)

	_, err = NewHS256([]byte("short"), Options{})
	assert.Error(t, err)
}

func TestRolesClaimShapes(t *testing.T) {
	claims := map[string]any{
		"roles":        []any{"user", 7, "admin"},
		"scope":        "user admin,extra",
		"realm_access": map[string]any{"roles": []any{"admin"}},
	}
	assert.Equal(t, []string{"user", "admin"}, rolesAt(claims, "roles"))
	assert.Equal(t, []string{"user", "admin", "extra"}, rolesAt(claims, "scope"))
	assert.Equal(t, []string{"admin"}, rolesAt(claims, "realm_access.roles"))
	assert.Nil(t, rolesAt(claims, "missing.path"))
	assert.Nil(t, rolesAt(claims, "roles.deeper"))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PrivateKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "alice", "aud": "berth", "roles": []string{"user"}, "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// runKeySet runs a key set's refresher for the test's duration.
func runKeySet(t *testing.T, set *KeySet) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = set.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestJWKS verifies RS256 and ES256 tokens against a JWKS served on
// loopback, including a key rotated in (found after an unknown kid).
func TestJWKS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rotated, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	keys := []map[string]string{
		rsaJWK("rsa1", rsaKey),
		{"kty": "EC", "kid": "ec1", "crv": "P-256", "x": b64(ecKey.X.FillBytes(make([]byte, 32))), "y": b64(ecKey.Y.FillBytes(make([]byte, 32)))},
		{"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, // ignored: not a public key
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
	}
	var fetches atomic.Int32
	var rotatedIn atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "slow" {
			fetches.Add(1)
		}
		ks := keys
		if rotatedIn.Load() {
			ks = append([]map[string]string{rsaJWK("rsa2", rotated)}, keys...)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": ks})
	}))
	defer srv.Close()

	set := NewKeySet(srv.URL, KeySetOptions{Client: srv.Client(), MinRefresh: 10 * time.Millisecond, MaxRefresh: time.Hour})
	v := NewJWKS(set, Options{Audience: "berth"})
	_, err = v.Verify(sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey))
	require.ErrorIs(t, err, ErrInvalid, "nothing verifies before the keys are loaded")
	runKeySet(t, set)
	require.Eventually(t, func() bool {
		_, err := v.Verify(sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey))
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	p, err := v.Verify(sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey))
	require.NoError(t, err)
	assert.True(t, p.User)
	_, err = v.Verify(sign(t, jwt.SigningMethodES256, "ec1", ecKey))
	require.NoError(t, err)

	// HS256 signed with a public key's bytes (algorithm confusion) is refused.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "aud": "berth", "exp": time.Now().Add(time.Hour).Unix()})
	hs.Header["kid"] = "rsa1"
	hsTok, _ := hs.SignedString(rsaKey.N.Bytes())
	_, err = v.Verify(hsTok)
	assert.ErrorIs(t, err, ErrInvalid)

	// A token from a rotated-in key verifies once an unknown kid asked for
	// a refresh (the schedule here is an hour).
	_, err = v.Verify(sign(t, jwt.SigningMethodRS256, "rsa2", rotated))
	assert.ErrorIs(t, err, ErrInvalid, "rsa2 is not published yet")
	rotatedIn.Store(true)
	require.Eventually(t, func() bool {
		_, err := v.Verify(sign(t, jwt.SigningMethodRS256, "rsa2", rotated))
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)

	// Unknown kids do not refetch more than once per minimum interval.
	slow := NewKeySet(srv.URL+"?slow", KeySetOptions{Client: srv.Client(), MinRefresh: time.Hour})
	vs := NewJWKS(slow, Options{})
	runKeySet(t, slow)
	require.Eventually(t, func() bool {
		_, err := vs.Verify(sign(t, jwt.SigningMethodRS256, "rsa1", rsaKey))
		return err == nil
	}, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, int32(1), fetches.Load())
	for range 50 {
		_, err = vs.Verify(sign(t, jwt.SigningMethodRS256, "nope", rsaKey))
		assert.True(t, errors.Is(err, ErrInvalid))
	}
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, int32(1), fetches.Load(), "unknown key ids fetched again within the minimum interval")
}

// TestJWKSRemovedKeyStopsVerifying: a key the identity provider removed
// stops verifying within the refresh interval, which honours the
// response's Cache-Control max-age. Before, a known key id was never
// fetched again, so a removed key verified forever.
func TestJWKSRemovedKeyStopsVerifying(t *testing.T) {
	old, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	next, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	var rotated atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := rsaJWK("old", old)
		if rotated.Load() {
			k = rsaJWK("next", next)
		}
		w.Header().Set("Cache-Control", "public, max-age=0") // the floor (MinRefresh) applies
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{k}})
	}))
	defer srv.Close()
	set := NewKeySet(srv.URL, KeySetOptions{Client: srv.Client(), MinRefresh: 100 * time.Millisecond, MaxRefresh: time.Hour})
	v := NewJWKS(set, Options{})
	runKeySet(t, set)
	oldTok := sign(t, jwt.SigningMethodRS256, "old", old)
	require.Eventually(t, func() bool { _, err := v.Verify(oldTok); return err == nil }, 5*time.Second, 5*time.Millisecond)

	rotated.Store(true)
	start := time.Now()
	require.Eventually(t, func() bool { _, err := v.Verify(oldTok); return err != nil }, 5*time.Second, 5*time.Millisecond,
		"the removed key still verifies")
	t.Logf("removed key refused after %s (max-age 0, floor 100ms, schedule 1h)", time.Since(start))
	_, err = v.Verify(sign(t, jwt.SigningMethodRS256, "next", next))
	require.NoError(t, err)
}

// TestJWKSFetchNeverBlocksVerification: while the identity provider hangs,
// tokens signed with known keys verify at once. Before, the fetch held a
// lock that stalled every check (forwardAuth included) for up to 5 s.
func TestJWKSFetchNeverBlocksVerification(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	var hang atomic.Bool
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{rsaJWK("k", key)}})
	}))
	defer srv.Close()
	defer close(release)
	set := NewKeySet(srv.URL, KeySetOptions{Client: srv.Client(), MinRefresh: 10 * time.Millisecond, MaxRefresh: 20 * time.Millisecond})
	v := NewJWKS(set, Options{})
	runKeySet(t, set)
	tok := sign(t, jwt.SigningMethodRS256, "k", key)
	require.Eventually(t, func() bool { _, err := v.Verify(tok); return err == nil }, 5*time.Second, 5*time.Millisecond)

	hang.Store(true)
	time.Sleep(50 * time.Millisecond) // a scheduled fetch is now hanging
	var slowest time.Duration
	for range 20 {
		start := time.Now()
		_, err := v.Verify(tok)
		require.NoError(t, err)
		_, _ = v.Verify(sign(t, jwt.SigningMethodRS256, "unknown", key)) // asks for a refresh; must not wait for it
		slowest = max(slowest, time.Since(start))
	}
	assert.Less(t, slowest, time.Second, "verification waited for the hanging fetch")
}
