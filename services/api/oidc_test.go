package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idp is an in-process OpenID Connect provider: discovery, JWKS, an
// authorize endpoint that signs in whoever the test says (no login page)
// and a token endpoint that checks the client, the redirect URL, the PKCE
// verifier and that a code is used once.
type idp struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	mu     sync.Mutex
	user   string
	roles  []string
	nonce  string // "": the sign-in's own
	codes  map[string]grant
	client string
}

type grant struct{ challenge, nonce, redirect string }

func newIDP(t *testing.T) *idp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p := &idp{t: t, key: key, codes: map[string]grant{}, client: "berth", user: "alice", roles: []string{"user"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize",
			"token_endpoint": p.srv.URL + "/token", "jwks_uri": p.srv.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
			"code_challenge_methods_supported": []string{"S256"}})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes())}}})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != p.client || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		code := base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))
		p.mu.Lock()
		p.codes[code] = grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), redirect: q.Get("redirect_uri")}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+url.QueryEscape(code)+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		g, ok := p.codes[r.Form.Get("code")]
		delete(p.codes, r.Form.Get("code")) // once
		user, roles, nonce := p.user, p.roles, p.nonce
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.Form.Get("code_verifier")))
		client, _, _ := r.BasicAuth()
		if client == "" {
			client = r.Form.Get("client_id")
		}
		if !ok || client != p.client || r.Form.Get("redirect_uri") != g.redirect || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		if nonce == "" {
			nonce = g.nonce
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": p.srv.URL, "sub": user, "aud": p.client,
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "nonce": nonce, "roles": roles})
		tok.Header["kid"] = "k1"
		idToken, err := tok.SignedString(key)
		if err != nil {
			t.Errorf("sign the ID token: %v", err) // not FailNow: this is the server's goroutine
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// browserClient keeps cookies and follows redirects, as a browser does.
func browserClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestSignInWithTheIdentityProvider: the authorization-code flow with
// PKCE against a real (in-process) OpenID Connect provider ends in a
// Berth session for the ID token's subject with the roles its claims
// give; a forged or replayed answer, a wrong nonce, or an account without
// a Berth role gets no session.
func TestSignInWithTheIdentityProvider(t *testing.T) {
	p := newIDP(t)
	e := newEnv(t)
	a := e.startAPI("--oidc-issuer", p.srv.URL, "--oidc-client-id", "berth")
	a.stop()
	// The callback must be this API's own address, known once it listens:
	// start again with it (the port is free again and gets reused below).
	base := a.base
	a = e.startAPI("--http-addr", strings.TrimPrefix(base, "http://"), "--oidc-issuer", p.srv.URL, "--oidc-client-id", "berth",
		"--oidc-redirect-url", base+"/ui/oidc/callback", "--oidc-name", "Example SSO")

	b := browserClient(t)
	res, err := b.Get(a.base + "/ui/signin?next=/ui/workspaces/x/history")
	require.NoError(t, err)
	page := readAll(t, res)
	assert.Contains(t, page, "Sign in with Example SSO")
	assert.NotContains(t, page, "Development sign-in", "dev tokens are off")

	res, err = b.Get(a.base + "/ui/signin/oidc?next=/")
	require.NoError(t, err)
	page = readAll(t, res)
	require.Equal(t, http.StatusOK, res.StatusCode, page)
	assert.Equal(t, a.base+"/", res.Request.URL.String(), "back on the dashboard")
	assert.Contains(t, page, "Signed in as <strong>alice</strong>")

	t.Run("a code is used once", func(t *testing.T) {
		b := browserClient(t)
		b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if strings.Contains(req.URL.Path, "/ui/oidc/callback") {
				return http.ErrUseLastResponse // stop before Berth sees the answer
			}
			return nil
		}
		res, err := b.Get(a.base + "/ui/signin/oidc")
		require.NoError(t, err)
		readAll(t, res)
		callback := res.Header.Get("Location")
		require.Contains(t, callback, "/ui/oidc/callback?code=")
		b.CheckRedirect = nil
		res, err = b.Get(callback)
		require.NoError(t, err)
		readAll(t, res)
		require.Equal(t, http.StatusOK, res.StatusCode)
		res, err = b.Get(callback) // replayed: the state cookie is gone, the code used
		require.NoError(t, err)
		assert.Contains(t, readAll(t, res), "Start again")
		assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	})
	t.Run("an answer this browser did not ask for", func(t *testing.T) {
		res, err := browserClient(t).Get(a.base + "/ui/oidc/callback?code=x&state=y")
		require.NoError(t, err)
		readAll(t, res)
		assert.Equal(t, http.StatusBadRequest, res.StatusCode)
	})
	t.Run("a token for another sign-in (nonce)", func(t *testing.T) {
		p.mu.Lock()
		p.nonce = "someone-elses"
		p.mu.Unlock()
		defer func() { p.mu.Lock(); p.nonce = ""; p.mu.Unlock() }()
		res, err := browserClient(t).Get(a.base + "/ui/signin/oidc")
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Contains(t, readAll(t, res), "nonce")
	})
	t.Run("roles from the ID token", func(t *testing.T) {
		p.mu.Lock()
		p.user, p.roles = "carol", []string{"guest"}
		p.mu.Unlock()
		res, err := browserClient(t).Get(a.base + "/ui/signin/oidc")
		require.NoError(t, err)
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Contains(t, readAll(t, res), "no Berth role")
		p.mu.Lock()
		p.user, p.roles = "root", []string{"admin"}
		p.mu.Unlock()
		res, err = browserClient(t).Get(a.base + "/ui/signin/oidc")
		require.NoError(t, err)
		page := readAll(t, res)
		assert.Contains(t, page, "Signed in as <strong>root</strong>")
		assert.Contains(t, page, "Administer with <code>berthctl</code>", "path mode: an admin's session carries no admin rights")
	})
}
