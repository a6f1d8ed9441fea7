package render

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// DefaultTLSStore is a dynamic configuration giving Traefik's default TLS
// store a certificate of its own: a self-signed ECDSA one, for clients
// that name no host Traefik has a certificate for. Without it Traefik
// generates a new RSA key for that fallback on every configuration reload
// (40 to 150 ms here), and every route change waits for it.
func DefaultTLSStore(now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("default certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("default certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Berth default certificate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("default certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("default certificate key: %w", err)
	}
	// Traefik takes the PEM itself where a file name is expected.
	type cert struct {
		CertFile string `json:"certFile"`
		KeyFile  string `json:"keyFile"`
	}
	doc := map[string]any{"tls": map[string]any{"stores": map[string]any{"default": map[string]any{"defaultCertificate": cert{
		CertFile: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyFile:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})),
	}}}}}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("default certificate: %w", err)
	}
	return append([]byte("# Generated once by berth router-sync (BERTH_TRAEFIK_DEFAULT_CERT). Do not edit.\n"), append(out, '\n')...), nil
}
