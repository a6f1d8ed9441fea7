// Package auth verifies bearer tokens (JWT: HS256 with a shared secret for
// development, RS256/ES256 from a JWKS URL for real identity providers) and
// turns their claims into a Principal.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors of Verify.
var (
	ErrMissing = errors.New("no bearer token")
	ErrExpired = errors.New("token expired")
	ErrInvalid = errors.New("invalid token")
)

// Principal is a verified caller.
type Principal struct {
	Subject string
	Roles   []string
	Admin   bool
	User    bool
	// Auditor reads the whole audit log, and nothing else a user could not.
	Auditor bool
}

// Options configure claim checks and role mapping.
type Options struct {
	Issuer   string // required iss when set
	Audience string // required aud when set
	// RolesClaim is the claim holding roles; a dotted path reaches into
	// nested objects (Keycloak: "realm_access.roles").
	RolesClaim  string
	AdminRole   string
	UserRole    string
	AuditorRole string
	Leeway      time.Duration
}

func (o *Options) defaults() {
	if o.RolesClaim == "" {
		o.RolesClaim = "roles"
	}
	if o.AdminRole == "" {
		o.AdminRole = "admin"
	}
	if o.UserRole == "" {
		o.UserRole = "user"
	}
	if o.AuditorRole == "" {
		o.AuditorRole = "auditor"
	}
	if o.Leeway == 0 {
		o.Leeway = 30 * time.Second
	}
}

// Verifier checks tokens.
type Verifier struct {
	keys    jwt.Keyfunc
	methods []string
	o       Options
}

// NewHS256 verifies tokens signed with a shared secret.
func NewHS256(secret []byte, o Options) (*Verifier, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("jwt secret must be at least 32 bytes, got %d", len(secret))
	}
	o.defaults()
	return &Verifier{
		keys:    func(*jwt.Token) (any, error) { return secret, nil },
		methods: []string{"HS256"},
		o:       o,
	}, nil
}

// NewJWKS verifies RS256/ES256 tokens against the keys of a JWKS.
func NewJWKS(set *KeySet, o Options) *Verifier {
	o.defaults()
	return &Verifier{
		keys:    set.Keyfunc,
		methods: []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512"},
		o:       o,
	}
}

// Verify checks a token's signature, expiry, issuer and audience and reads
// its subject and roles.
func (v *Verifier) Verify(raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrMissing
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.o.Leeway),
	}
	if v.o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.o.Issuer))
	}
	if v.o.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.o.Audience))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, v.keys, opts...)
	if errors.Is(err, jwt.ErrTokenExpired) {
		return Principal{}, ErrExpired
	}
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return v.o.Principal(claims)
}

// Principal maps verified claims to who they name and what they may do:
// sub, and roles at RolesClaim (the same for bearer tokens and for ID
// tokens of the sign-in).
func (o Options) Principal(claims map[string]any) (Principal, error) {
	o.defaults()
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return Principal{}, fmt.Errorf("%w: no sub claim", ErrInvalid)
	}
	roles := rolesAt(claims, o.RolesClaim)
	p := Principal{Subject: sub, Roles: roles}
	p.Admin = slices.Contains(roles, o.AdminRole)
	p.User = p.Admin || slices.Contains(roles, o.UserRole)
	p.Auditor = slices.Contains(roles, o.AuditorRole)
	return p, nil
}

// rolesAt reads a list of roles at a dotted claim path; a string value is
// split on spaces and commas (OAuth "scope" style).
func rolesAt(claims map[string]any, path string) []string {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	switch v := cur.(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, r := range v {
			if s, ok := r.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' })
	}
	return nil
}

// Issuer signs HS256 development tokens. It exists for trying Berth out
// and for tests; production deployments use their identity provider.
type Issuer struct {
	secret     []byte
	rolesClaim string
	issuer     string
	audience   string
}

// NewIssuer returns an issuer whose tokens the matching HS256 Verifier
// accepts.
func NewIssuer(secret []byte, o Options) *Issuer {
	o.defaults()
	return &Issuer{secret: secret, rolesClaim: o.RolesClaim, issuer: o.Issuer, audience: o.Audience}
}

// Issue signs a token for sub with roles, valid for ttl from now.
func (i *Issuer) Issue(sub string, roles []string, now time.Time, ttl time.Duration) (string, error) {
	claims := jwt.MapClaims{
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if i.issuer != "" {
		claims["iss"] = i.issuer
	}
	if i.audience != "" {
		claims["aud"] = i.audience
	}
	setAt(claims, i.rolesClaim, roles)
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(i.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

func setAt(claims map[string]any, path string, roles []string) {
	parts := strings.Split(path, ".")
	cur := claims
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = roles
}
