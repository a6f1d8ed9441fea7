// Package oidclogin is the browser sign-in with the operator's identity
// provider: OpenID Connect's authorization-code flow with PKCE. The state,
// nonce and code verifier travel in a short-lived signed cookie, so any
// API replica sharing the state key can finish a sign-in another began.
package oidclogin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/berthdev/berth/services/api/internal/auth"
)

// Config is one identity provider.
type Config struct {
	Issuer       string // its issuer URL (discovery at /.well-known/openid-configuration)
	ClientID     string
	ClientSecret string // empty for a public client (PKCE only)
	RedirectURL  string // <public URL>/ui/oidc/callback
	Scopes       []string
	// StateKey signs the state cookie (32+ bytes; the same on every API
	// replica).
	StateKey []byte
	// Claims maps the ID token's claims to a principal (roles).
	Claims func(map[string]any) (auth.Principal, error)
	// HTTPClient reaches the provider (default http.DefaultClient).
	HTTPClient *http.Client
	Now        func() time.Time
}

// Login runs sign-ins against one provider. Discovery happens at the
// first sign-in and is retried on the next if the provider was down.
type Login struct {
	cfg Config

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// Errors a person sees as "sign-in failed" with what to do.
var (
	ErrProvider = errors.New("the identity provider cannot be reached")
	ErrState    = errors.New("the sign-in expired or did not start here; start again")
	ErrDenied   = errors.New("the identity provider refused the sign-in")
	ErrToken    = errors.New("the identity provider's answer does not verify")
)

// stateTTL is how long a person may take at the provider.
const stateTTL = 10 * time.Minute

// New checks the configuration; it does not reach the provider yet.
func New(cfg Config) (*Login, error) {
	switch {
	case cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "":
		return nil, errors.New("the issuer, the client id and the redirect URL are all needed")
	case len(cfg.StateKey) < 32:
		return nil, errors.New("the state key must be at least 32 bytes")
	case cfg.Claims == nil:
		return nil, errors.New("no claims mapping")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email"}
	}
	return &Login{cfg: cfg}, nil
}

func (l *Login) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, l.cfg.HTTPClient)
}

// discover fetches the provider's metadata once it answers.
func (l *Login) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.oauth != nil {
		return l.oauth, l.verifier, nil
	}
	p, err := oidc.NewProvider(l.ctx(ctx), l.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrProvider, err)
	}
	l.oauth = &oauth2.Config{ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret, RedirectURL: l.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: l.cfg.Scopes}
	l.verifier = p.Verifier(&oidc.Config{ClientID: l.cfg.ClientID, Now: l.cfg.Now})
	return l.oauth, l.verifier, nil
}

// pending is what the state cookie carries between Start and Finish.
type pending struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
}

// Start returns where to send the browser and the state cookie's value.
func (l *Login) Start(ctx context.Context, next string) (redirect, cookie string, err error) {
	oc, _, err := l.discover(ctx)
	if err != nil {
		return "", "", err
	}
	p := pending{State: random(), Nonce: random(), Verifier: oauth2.GenerateVerifier(), Next: next,
		Expires: l.cfg.Now().Add(stateTTL).Unix()}
	cookie, err = l.seal(p)
	if err != nil {
		return "", "", err
	}
	return oc.AuthCodeURL(p.State, oidc.Nonce(p.Nonce), oauth2.S256ChallengeOption(p.Verifier)), cookie, nil
}

// Finish checks the answer against the state cookie, exchanges the code
// (with the PKCE verifier), verifies the ID token and its nonce, and
// returns who signed in and where they were going.
func (l *Login) Finish(ctx context.Context, cookie, state, code string) (auth.Principal, string, error) {
	p, err := l.open(cookie)
	if err != nil || p.State == "" || !hmac.Equal([]byte(p.State), []byte(state)) {
		return auth.Principal{}, "", ErrState
	}
	oc, verifier, err := l.discover(ctx)
	if err != nil {
		return auth.Principal{}, "", err
	}
	tok, err := oc.Exchange(l.ctx(ctx), code, oauth2.VerifierOption(p.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return auth.Principal{}, "", fmt.Errorf("%w: %s", ErrDenied, re.ErrorCode)
		}
		return auth.Principal{}, "", fmt.Errorf("%w: %w", ErrProvider, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return auth.Principal{}, "", fmt.Errorf("%w: no ID token", ErrToken)
	}
	id, err := verifier.Verify(ctx, raw)
	if err != nil {
		return auth.Principal{}, "", fmt.Errorf("%w: %w", ErrToken, err)
	}
	if !hmac.Equal([]byte(id.Nonce), []byte(p.Nonce)) {
		return auth.Principal{}, "", fmt.Errorf("%w: the nonce is not this sign-in's", ErrToken)
	}
	var claims map[string]any
	if err := id.Claims(&claims); err != nil {
		return auth.Principal{}, "", fmt.Errorf("%w: %w", ErrToken, err)
	}
	who, err := l.cfg.Claims(claims)
	if err != nil {
		return auth.Principal{}, "", fmt.Errorf("%w: %w", ErrToken, err)
	}
	return who, p.Next, nil
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// seal is base64(json).base64(hmac).
func (l *Login) seal(p pending) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(b)
	return body + "." + base64.RawURLEncoding.EncodeToString(l.mac(body)), nil
}

func (l *Login) open(cookie string) (pending, error) {
	body, sig, ok := strings.Cut(cookie, ".")
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(got, l.mac(body)) {
		return pending{}, ErrState
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return pending{}, ErrState
	}
	var p pending
	if json.Unmarshal(b, &p) != nil || l.cfg.Now().Unix() > p.Expires {
		return pending{}, ErrState
	}
	return p, nil
}

func (l *Login) mac(body string) []byte {
	m := hmac.New(sha256.New, l.cfg.StateKey)
	m.Write([]byte("berth-oidc-state:" + body))
	return m.Sum(nil)
}
