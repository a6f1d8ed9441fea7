package natsbus_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/berthdev/berth/pkg/platform/natsbus"
)

// pemFiles writes a certificate and its key as PEM files.
func pemFiles(t *testing.T, dir, name string, der []byte, key *ecdsa.PrivateKey) (certFile, keyFile string) {
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	k, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k}), 0o600))
	return certFile, keyFile
}

// issue makes a certificate signed by ca (self-signed when ca is nil).
func issue(t *testing.T, tmpl *x509.Certificate, ca *x509.Certificate, caKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	require.NoError(t, err)
	return der, key
}

// TestConnectOverTLS: a bus that requires TLS and client certificates
// takes a service configured with the CA and its certificate (the
// BERTH_NATS_CA_FILE, _CERT_FILE, _KEY_FILE settings), and refuses one
// without its certificate or that does not trust the server's CA.
func TestConnectOverTLS(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test ca"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, caKey := issue(t, caTmpl, nil, nil)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	caFile, _ := pemFiles(t, dir, "ca", caDER, caKey)
	srvDER, srvKey := issue(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "nats"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, caKey)
	srvCert, srvKeyFile := pemFiles(t, dir, "server", srvDER, srvKey)
	cliDER, cliKey := issue(t, &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "provisioner"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
	cliCert, cliKeyFile := pemFiles(t, dir, "client", cliDER, cliKey)

	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKeyFile, CaFile: caFile, Verify: true})
	require.NoError(t, err)
	tlsCfg.MinVersion = tls.VersionTLS12
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		TLSConfig: tlsCfg, TLSVerify: true, TLSTimeout: 2})
	require.NoError(t, err)
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	require.True(t, srv.ReadyForConnections(10*time.Second))
	url := "tls://" + srv.Addr().String()
	quiet := slog.New(slog.DiscardHandler)

	nc, err := natsbus.Connect(url, "tls-test", natsbus.Identity{CAFile: caFile, CertFile: cliCert, KeyFile: cliKeyFile}, quiet)
	require.NoError(t, err)
	defer nc.Close()
	require.Eventually(t, nc.IsConnected, 5*time.Second, 10*time.Millisecond)
	assert.True(t, nc.TLSRequired())
	require.NoError(t, nc.Publish("berth.tls", []byte("ok")))
	require.NoError(t, nc.Flush())

	for name, id := range map[string]natsbus.Identity{
		"no client certificate":   {CAFile: caFile},
		"server's CA not trusted": {CertFile: cliCert, KeyFile: cliKeyFile},
	} {
		other, err := natsbus.Connect(url, "tls-test", id, quiet)
		require.NoError(t, err, name) // Connect keeps retrying in the background
		time.Sleep(300 * time.Millisecond)
		assert.False(t, other.IsConnected(), "%s: connected", name)
		other.Close()
	}
}
